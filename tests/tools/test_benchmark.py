"""tools/benchmark.py's baselines and score regimes compute what their tables say (not timed)."""
import importlib.util
import time

import torch
import torch.nn.functional as F

from tests.conftest import make_tiny_cfg
from tests.tools.run_tool import REPO


def _benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_tool", REPO / "tools" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_release_style_path_gives_the_models_logits():
    # The release's order (features resized to the score grid, normalised, scored, then D2's
    # sem_seg_postprocess to the image size) against the model's own logits output.
    bench = _benchmark()
    model = bench.BenchmarkPixelCLIP(make_tiny_cfg()).eval()
    model.set_vocabulary(["sky", "grass", "dog", "road"])
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 255, (3, 64, 85), dtype=torch.uint8, generator=g), "height": 48, "width": 64}
              for _ in range(2)]
    for regime in ("random", "near-tie", "separated"):
        model.regime = regime
        with torch.no_grad():
            ours = [o["sem_seg"] for o in model(inputs)]
            model.release_style = True
            release = [o["sem_seg"] for o in model(inputs[:1]) + model(inputs[1:])]
            model.release_style = False
        for a, b in zip(ours, release):
            assert a.shape == b.shape == (4, 48, 64)
            assert torch.allclose(a, b, atol=1e-6, rtol=0), regime


def test_score_regimes():
    bench = _benchmark()
    g = torch.Generator().manual_seed(0)
    scores = 0.2 + 0.05 * torch.randn(2, 150, 8, 8, generator=g)
    near = bench.regime_scores(scores, "near-tie")
    assert float((near.amax(1) - near.amin(1)).max()) <= 0.9e-3 * (1 + 1e-5)
    assert torch.equal(near.argmax(1), scores.argmax(1))
    separated = bench.regime_scores(scores, "separated").topk(2, dim=1).values
    assert float((separated[:, 0] - separated[:, 1]).min()) >= 1.0
    assert torch.equal(bench.regime_scores(scores, "random"), scores)
    noise = bench.regime_scores(scores, "noise")
    assert 0.2 <= float(noise.min()) and float(noise.max()) <= 0.201


def test_sam_like_masks_are_overlapping_masks_of_many_sizes():
    bench = _benchmark()
    masks = bench.sam_like_masks(160, 64, torch.Generator().manual_seed(0))
    assert masks.shape == (64, 160, 160) and masks.dtype == torch.bool
    area = masks.flatten(1).sum(1).float() / 160**2
    assert float(area.max()) > 0.05 and float(area.min()) < 0.002  # from large regions to tiny parts
    assert int(masks.sum(0).max()) > 1  # nested / overlapping
    small = F.interpolate(masks[None].float(), size=(32, 32), mode="nearest")[0]
    assert (small.flatten(1).sum(1) <= 1).any()  # some vanish at a low mask resolution


def test_module_clock_counts_only_the_modules_forward(monkeypatch):
    """A fake clock that the module's forward advances by 3 s and the code around it by 5 s: the
    in-run backbone time of the eval table must be 3 s per call."""
    bench = _benchmark()
    now = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])

    class Slow(torch.nn.Module):
        def forward(self, x):
            now[0] += 3.0
            return x

    module = Slow()
    with bench.ModuleClock(module, torch.device("cpu")) as clock:
        for _ in range(2):
            now[0] += 5.0
            module(torch.zeros(1))
    assert clock.seconds == 6.0
    module(torch.zeros(1))  # hooks removed when the context closed
    assert clock.seconds == 6.0 and not module._forward_hooks and not module._forward_pre_hooks


def test_eval_tasks_register_their_folder_again_in_one_process(tmp_path):
    """``--tasks eval-parts,eval`` runs two eval tasks in one process, each in a new temporary folder:
    the second must read its own folder, not the first one's (deleted) registration."""
    from detectron2.data import DatasetCatalog

    bench = _benchmark()

    class Args:
        eval_images = 2

    cfg = make_tiny_cfg()
    for root in (tmp_path / "first", tmp_path / "second"):
        root.mkdir()
        test_cfg, name = bench.eval_dataset(str(root), Args, cfg)
        assert test_cfg.DATASETS.TEST == (name,)
        files = [d["file_name"] for d in DatasetCatalog.get(name)]
        assert len(files) == 2 and all(f.startswith(str(root)) for f in files)


def test_timed_reports_seconds_per_call_without_the_warmup(monkeypatch):
    """A fake clock: the warm-up call takes 10 s, the timed ones 2 s each -> 2 s per call."""
    bench = _benchmark()
    now = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])
    durations = iter([10.0, 2.0, 2.0, 2.0])

    def call():
        now[0] += next(durations)

    assert bench.timed(call, torch.device("cpu"), iters=3, warmup=1) == 2.0


def test_train_table_is_the_median_step_and_batch_over_it(monkeypatch):
    """bench_train: the warm-up step is not timed; s / batch is the median of the timed steps (3, 9, 4 s -> 4 s)
    and images / s the batch size over it (6 / 4 = 1.50)."""
    bench = _benchmark()
    now = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])
    durations = iter([100.0, 3.0, 9.0, 4.0])

    def step(model, optimizer, inputs):
        now[0] += next(durations)

    monkeypatch.setattr(bench, "build_model", lambda cfg: torch.nn.Linear(1, 1))
    monkeypatch.setattr(bench, "build_optimizer", lambda cfg, model: None)
    monkeypatch.setattr(bench, "train_inputs", lambda *args: [])
    monkeypatch.setattr(bench, "_train_step", step)

    class Args:
        train_batch, crop, num_masks, iters, json = 6, 64, 4, 3, False

    headers, rows, _ = bench.bench_train(Args, None, torch.device("cpu"))
    assert headers[1:4] == ["batch", "s / batch or image", "images / s"]
    assert rows[0][:4] == ["train step", 6, "4.000", "1.50"]


def test_cpu_peak_memory_is_the_resident_set_in_mib(monkeypatch):
    """PeakMemory's RSS reading (/proc/self/statm: resident pages × page size) in MiB against the kernel's VmRSS
    (KiB) of /proc/self/status; the peak of a block is the largest reading inside it minus the one at its start
    (readings stubbed: when the sampling thread runs is up to the scheduler)."""
    bench = _benchmark()
    with open("/proc/self/status") as f:
        vm_rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    assert abs(bench.PeakMemory._rss_mb() - vm_rss_kib / 1024) < 8  # what other threads allocate in between

    readings = iter([100.0, 164.0])  # at the start, then inside the block; 120 afterwards
    monkeypatch.setattr(bench.PeakMemory, "_rss_mb", staticmethod(lambda: next(readings, 120.0)))
    with bench.PeakMemory(torch.device("cpu")) as mem:
        deadline = time.time() + 30
        while mem._max < 164.0 and time.time() < deadline:  # until the sampling thread has read inside
            time.sleep(0.001)
    assert mem.peak_mb == 64.0
