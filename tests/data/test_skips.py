"""pixelclip/data/skips.py: skip counts per worker row, their one-line report, and the stop when no
sample of the training set can be used."""
import types

import pytest
from detectron2.data.common import DatasetFromList

import pixelclip.data.skips as skips
from pixelclip.data.skips import SKIP_REASONS, SkipAwareMapDataset, SkipCounter, format_skips
from pixelclip.errors import TrainingDataError


def test_each_worker_counts_in_its_own_row(monkeypatch):
    """Row 0 is the main process, row 1 + i data-loader worker i; a worker beyond the rows counts in row 0."""
    counter = SkipCounter(num_workers=2)
    counter.add("corrupt image", "main.jpg")
    for worker in (0, 1, 1):
        monkeypatch.setattr(skips, "get_worker_info", lambda w=worker: types.SimpleNamespace(id=w))
        counter.add("bad mask file", f"w{worker}.json")
    assert counter.counts.tolist() == [[1, 0, 0], [0, 1, 0], [0, 2, 0]]
    assert counter.totals() == {"corrupt image": 1, "bad mask file": 3, "no mask left after cropping": 0}
    few = SkipCounter(num_workers=0)
    monkeypatch.setattr(skips, "get_worker_info", lambda: types.SimpleNamespace(id=0))
    assert few.add("corrupt image", "a.jpg") == 1 and few.counts.tolist() == [[1, 0, 0]]


def test_the_report_names_three_paths_and_only_for_reasons_that_happened():
    counter = SkipCounter()
    for i in range(5):
        counter.add("bad mask file", f"m{i}.json")
    assert counter.first_paths["bad mask file"] == ["m0.json", "m1.json", "m2.json"]
    assert format_skips(counter.totals(), counter.first_paths) == (
        "corrupt image 0, bad mask file 5 (e.g. m0.json, m1.json, m2.json), no mask left after cropping 0")
    assert format_skips({"corrupt image": 0}, {"corrupt image": ["x.jpg"]}).startswith("corrupt image 0, ")
    assert SKIP_REASONS == ("corrupt image", "bad mask file", "no mask left after cropping")


def test_a_large_set_of_bad_samples_stops_after_1000_tries():
    """min(len, 1000) samples tried without one success: 1000 of a 1500-sample set."""
    dataset = SkipAwareMapDataset(DatasetFromList(list(range(1500)), copy=False), lambda d: None)
    with pytest.raises(TrainingDataError, match=r"all 1000 samples tried \(of 1500\) were skipped"):
        dataset[0]


def test_after_one_success_bad_samples_are_skipped_for_good():
    """Once a sample succeeded the data is usable: failures never stop the run (D2 draws another)."""
    dataset = SkipAwareMapDataset(DatasetFromList([0, 1, 2], copy=False), lambda d: d if d == 0 else None)
    assert dataset[0] == 0
    for _ in range(5):
        assert dataset[1] == 0 and dataset[2] == 0


def test_a_sample_that_succeeds_again_is_a_candidate_again():
    """As D2's MapDataset: a failed index leaves the pool of replacements and a success puts it back. Sample 0
    fails once (a transient error) then works; sample 1 works once then always fails: its replacement is 0."""
    calls = {0: 0, 1: 0}

    def mapper(d):
        calls[d] += 1
        ok = calls[d] > 1 if d == 0 else calls[d] == 1
        return d if ok else None

    dataset = SkipAwareMapDataset(DatasetFromList([0, 1], copy=False), mapper)
    assert dataset[0] == 1  # 0 fails, 1 is drawn instead
    assert dataset[0] == 0  # 0 works now: back among the candidates
    assert dataset[1] == 0  # 1 fails for good: 0 replaces it (no stop: a sample was usable)
