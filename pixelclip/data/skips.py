"""Skipped training samples: counted per reason across data-loader workers, reported at the end of
a run, and a clear stop when no sample of the training set can be used.

The training mapper (``mappers/unlabeled_dataset_mapper.py``) returns ``None`` for a corrupt sample, and
Detectron2's ``MapDataset`` then draws another index. Two things were missing:

* a record: :class:`SkipCounter` keeps the counts per reason in a shared-memory tensor with one
  row per data-loader worker (and one for the main process), so the trainer can log one line with
  the totals of every worker when the run ends (``pixelclip/trainer.py``), summed over ranks;
* a stop: when every sample is bad, D2's ``MapDataset`` empties its pool of candidates and dies
  with ``ValueError: Sample larger than population``. :class:`SkipAwareMapDataset` stops instead
  with a :class:`~pixelclip.errors.TrainingDataError` giving the counts per reason and the first
  paths, as soon as a worker has tried ``min(len(dataset), 1000)`` samples without one success.
"""
import logging
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.data.common import MapDataset
from torch.utils.data import get_worker_info

from ..errors import TrainingDataError

logger = logging.getLogger(__name__)

__all__ = ["SKIP_REASONS", "SkipCounter", "SkipAwareMapDataset", "format_skips"]

# Reasons a training sample is skipped (returned as None) or degraded; the mapper counts them.
SKIP_REASONS = ("corrupt image", "bad mask file", "no mask left after cropping")
_FIRST_PATHS = 3
_MAX_FAILURES_WITHOUT_SUCCESS = 1000


class SkipCounter:
    """Counts of skipped samples per reason, shared by the main process and its data-loader workers.

    Arguments:
        num_workers: data-loader workers that will count (rows 1..num_workers; row 0: the main process).
    """

    def __init__(self, num_workers: int = 0):
        self.counts = torch.zeros(num_workers + 1, len(SKIP_REASONS), dtype=torch.int64).share_memory_()
        self.first_paths: Dict[str, List[str]] = {r: [] for r in SKIP_REASONS}  # this process only

    def _row(self) -> int:
        info = get_worker_info()
        row = 0 if info is None else info.id + 1
        return row if row < self.counts.shape[0] else 0

    def add(self, reason: str, path: str) -> int:
        """Count one sample skipped for ``reason``; returns this process's count for it."""
        index = SKIP_REASONS.index(reason)
        row = self._row()
        self.counts[row, index] += 1
        if len(self.first_paths[reason]) < _FIRST_PATHS:
            self.first_paths[reason].append(path)
        return int(self.counts[row, index])

    def totals(self) -> Dict[str, int]:
        """reason -> count over the main process and all workers."""
        summed = self.counts.sum(dim=0).tolist()
        return {reason: int(n) for reason, n in zip(SKIP_REASONS, summed)}


def format_skips(totals: Dict[str, int], first_paths: Optional[Dict[str, Sequence[str]]] = None) -> str:
    """``"corrupt image 3 (e.g. a.jpg), bad mask file 0, ..."`` (every reason, in order)."""
    parts = []
    for reason in SKIP_REASONS:
        paths = (first_paths or {}).get(reason) or []
        example = f" (e.g. {', '.join(paths)})" if paths and totals.get(reason, 0) else ""
        parts.append(f"{reason} {totals.get(reason, 0)}{example}")
    return ", ".join(parts)


class SkipAwareMapDataset(MapDataset):
    """D2's ``MapDataset`` (another random index when the mapper returns None) that stops with a
    :class:`TrainingDataError` when the samples it tries are all bad, instead of D2's
    ``Sample larger than population``.

    Arguments:
        dataset: a map-style dataset (D2's ``DatasetFromList``).
        map_func: the mapper; its ``skip_counter`` (a :class:`SkipCounter`), if any, gives the
            counts per reason and the first paths for the message.
    """

    def __init__(self, dataset, map_func):
        super().__init__(dataset, map_func)
        self._counter = getattr(map_func, "skip_counter", None)
        self._succeeded = False
        self._failures = 0

    def _stop(self) -> None:
        tried = self._failures
        detail = ""
        if self._counter is not None:
            mine = self._counter.counts[self._counter._row()]
            totals = {r: int(n) for r, n in zip(SKIP_REASONS, mine.tolist())}
            detail = ": " + format_skips(totals, self._counter.first_paths)
        raise TrainingDataError(
            f"no usable training sample: all {tried} samples tried (of {len(self._dataset)}) were skipped{detail}",
            "fix or regenerate these files (tools/generate_masks.py, datasets/README.md) or point DATASETS.TRAIN "
            "at another set")

    def __getitem__(self, idx):
        cur_idx = int(idx)
        while True:
            data = self._map_func(self._dataset[cur_idx])
            if data is not None:
                self._succeeded = True
                self._fallback_candidates.add(cur_idx)
                return data
            self._failures += 1
            self._fallback_candidates.discard(cur_idx)
            limit = min(len(self._dataset), _MAX_FAILURES_WITHOUT_SUCCESS)
            if not self._fallback_candidates or (not self._succeeded and self._failures >= limit):
                self._stop()
            cur_idx = self._rng.sample(list(self._fallback_candidates), k=1)[0]
