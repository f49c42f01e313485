"""Semantic-segmentation evaluation: Detectron2's ``SemSegEvaluator`` with a label reader that is
numpy-2-safe and reads 8-bit / 16-bit PNG and TIFF label files, and a summary table over benchmarks.

The metrics are D2's (http://cocodataset.org/#stuff-eval): mIoU, fwIoU, mACC and pACC over the
classes present in the ground truth, in percent.
"""
import json
import logging
import math
import os
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import MetadataCatalog
from detectron2.evaluation import SemSegEvaluator

from .data.label_io import read_label_file
from .errors import EvalLabelError
from .utils.io import atomic_write

logger = logging.getLogger(__name__)

SUMMARY_METRICS = ("mIoU", "fwIoU", "mACC", "pACC")
SUMMARY_COUNT = "images"  # number of evaluated images, a column of the summary
# A bad label file fails its dataset only (Trainer.test reports it and evaluates the others).
_LABEL_ACTION = ("make the dataset's label files again with its datasets/prepare_*.py script (they hold "
                 "prepared train ids, not the download's raw ids), or remove this file together with its image")

class SemSegLabelLoader:
    """``sem_seg_loading_fn`` for ``SemSegEvaluator``: reads a label file and checks it against
    the dataset (image size, class ids below ``num_classes`` or equal to ``ignore_label``)."""

    def __init__(
        self,
        num_classes: int,
        ignore_label: int,
        expected_sizes: Optional[Mapping[str, Tuple[int, int]]] = None,
    ):
        """
        Args:
            num_classes: K, the number of classes of the dataset.
            ignore_label: the label id that is not evaluated.
            expected_sizes: label file -> (height, width) of its image, from the dataset dicts.
        """
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.expected_sizes = dict(expected_sizes or {})

    def __call__(self, filename: str, dtype=int) -> np.ndarray:
        stored = read_label_file(filename, dtype=None)  # the file's own integer type (uint8 for most)
        expected = self.expected_sizes.get(filename)
        if expected is not None and stored.shape != tuple(expected):
            raise EvalLabelError(
                f"label file {filename} is {stored.shape[0]}×{stored.shape[1]} (H×W) but its image is "
                f"{expected[0]}×{expected[1]}", _LABEL_ACTION)
        label = stored.astype(np.int64)
        if stored.dtype == np.uint8:  # one pass over the bytes: which values occur
            present = np.flatnonzero(np.bincount(stored.reshape(-1), minlength=256))
            bad = present[(present >= self.num_classes) & (present != self.ignore_label)]
        else:
            bad = (label != self.ignore_label) & ((label < 0) | (label >= self.num_classes))
            bad = np.unique(label[bad]) if bad.any() else bad[:0]
        if len(bad):
            values = bad[:5].tolist()
            raise EvalLabelError(
                f"label file {filename} holds class ids {values} outside 0..{self.num_classes - 1} "
                f"(ignore_label {self.ignore_label})", _LABEL_ACTION)
        return label.astype(dtype, copy=False)


class PixelCLIPSemSegEvaluator(SemSegEvaluator):
    """``SemSegEvaluator`` whose ``process`` is numpy-2-safe (no ``np.array(tensor)``), also takes
    arg-max labels (``sem_seg_labels``: H×W) instead of logits, and checks each prediction (K×H×W
    logits, K = len(stuff_classes), H×W = the input's height×width), so a wrong vocabulary or size
    fails with a clear error. Metrics are D2's ``evaluate()``."""

    accepts_labels = True  # the Trainer may ask the model for ``sem_seg_labels`` (TEST.OUTPUT)

    def _prediction(self, inp: Dict, out: Dict):
        """H×W int64 numpy labels of one output (``sem_seg_labels``, else the arg-max of ``sem_seg``)."""
        if "sem_seg_labels" in out:
            labels = out["sem_seg_labels"]
            if labels.dim() != 2:
                raise ValueError(f"sem_seg_labels for {inp['file_name']} has shape {tuple(labels.shape)}; expected H×W")
            self._check_size(inp, labels)
            low, high = torch.aminmax(labels) if labels.numel() else (0, 0)  # one pass
            if int(low) < 0 or int(high) >= self._num_classes:
                raise ValueError(
                    f"sem_seg_labels for {inp['file_name']} hold ids outside 0..{self._num_classes - 1} "
                    f"(dataset {self._dataset_name}); evaluate with the dataset's vocabulary."
                )
        else:
            self._check(inp, out["sem_seg"])
            labels = out["sem_seg"].max(dim=0).indices  # = argmax (first maximum), faster on CPU
        if inp["file_name"] not in self.input_file_to_gt_file:
            raise KeyError(f"image {inp['file_name']} is not part of dataset {self._dataset_name}")
        return labels.to(self._cpu_device).numpy().astype(np.int64, copy=False)

    def _check_size(self, inp: Dict, prediction) -> None:
        if "height" in inp and "width" in inp:
            if tuple(prediction.shape[-2:]) != (inp["height"], inp["width"]):
                raise ValueError(
                    f"prediction for {inp['file_name']} is {tuple(prediction.shape[-2:])} (H×W) but "
                    f"the image is {(inp['height'], inp['width'])}"
                )

    def _check(self, inp: Dict, sem_seg) -> None:
        if sem_seg.dim() != 3 or sem_seg.shape[0] != self._num_classes:
            raise ValueError(
                f"prediction for {inp['file_name']} has shape {tuple(sem_seg.shape)}; dataset "
                f"{self._dataset_name} needs K×H×W logits with K = {self._num_classes} "
                "(its stuff_classes). Evaluate with the dataset's vocabulary."
            )
        self._check_size(inp, sem_seg)

    def process(self, inputs, outputs):
        """Accumulate the (K+1)×(K+1) confusion matrix (rows: prediction, columns: ground truth;
        the last column collects ignored pixels) of each image, and that of the boundary maps (D2's
        ``_mask_to_boundary``) when D2 computes boundary IoU.

        D2's own ``process`` indexes the boundary matrix with ``(K + 1) · b_pred + b_gt`` on uint8 maps,
        which wraps around at 256, so its boundary IoUs count pixels in the wrong cells (a perfect
        prediction does not score 100); here the index is taken in int64.

        Args:
            inputs: dataset dicts with ``file_name`` (and ``height``, ``width``).
            outputs: dicts with ``sem_seg`` (K×H×W logits) or ``sem_seg_labels`` (H×W class ids).
        """
        n = self._num_classes + 1
        for inp, out in zip(inputs, outputs):
            pred = self._prediction(inp, out)
            gt_file = self.input_file_to_gt_file[inp["file_name"]]
            gt = self.sem_seg_loading_fn(gt_file, dtype=int)
            if gt.shape != pred.shape:
                raise EvalLabelError(
                    f"label file {gt_file} is {gt.shape[0]}×{gt.shape[1]} (H×W) but its image is "
                    f"{pred.shape[0]}×{pred.shape[1]}", _LABEL_ACTION)
            gt[gt == self._ignore_label] = self._num_classes
            index = np.multiply(pred.reshape(-1), n, dtype=np.int64)  # the cell of each pixel: n·pred + gt
            index += gt.reshape(-1)
            confusion = np.bincount(index, minlength=n * n).reshape(n, n)
            self._conf_matrix += confusion
            if self._compute_boundary_iou:
                b_gt = self._mask_to_boundary(gt.astype(np.uint8))
                b_pred = self._mask_to_boundary(pred.astype(np.uint8))
                np.multiply(b_pred.reshape(-1), n, out=index, dtype=np.int64)
                index += b_gt.reshape(-1)
                self._b_conf_matrix += np.bincount(index, minlength=n * n).reshape(n, n)
            predicted = np.flatnonzero(confusion.sum(axis=1))  # the classes of pred, without np.unique
            self._predictions.extend(self.encode_json_sem_seg(pred, inp["file_name"], labels=predicted))

    def evaluate(self):
        """D2's metrics, plus ``num_images``: how many images the metrics were computed on (all ranks)."""
        results = super().evaluate()
        if results is None:  # not the main process
            return results
        num_images = len({p["file_name"] for p in self._predictions})
        results["sem_seg"]["num_images"] = num_images
        logger.info("%s: evaluated %d images", self._dataset_name, num_images)
        return results

    def encode_json_sem_seg(self, sem_seg, input_file_name, labels=None):
        """D2's COCO-stuff RLE results of one H×W prediction, byte for byte (one pass over the image for
        all labels, instead of one mask per label); ``labels`` (the ids present, if known) spares the
        ``np.unique`` pass."""
        if labels is None:
            labels = np.unique(sem_seg)
        results = []
        for label, rle in zip(labels, label_rles(sem_seg, labels)):
            label = int(label)
            if self._contiguous_id_to_dataset_id is not None:
                if label not in self._contiguous_id_to_dataset_id:
                    raise KeyError(f"label {label} is not in the metadata of dataset {self._dataset_name}")
                dataset_id = self._contiguous_id_to_dataset_id[label]
            else:
                dataset_id = label
            rle["counts"] = rle["counts"].decode("utf-8")
            results.append({"file_name": input_file_name, "category_id": dataset_id, "segmentation": rle})
        return results


def label_rles(label_map: np.ndarray, labels) -> list:
    """COCO RLEs of the masks ``label_map == l`` for each l of ``labels``: the same dicts as
    ``pycocotools.mask.encode`` of each mask (``size`` [H, W], compressed ``counts`` bytes).

    The H×W map is read once in column-major order (RLE's order) and cut into runs of one label;
    each label's RLE counts are then its runs and the gaps between them, starting with a gap
    (possibly 0), without a trailing 0."""
    h, w = label_map.shape
    flat = np.asarray(label_map).ravel(order="F")
    n = flat.size
    if n == 0:
        return [mask_util.encode(np.zeros((h, w, 1), dtype=np.uint8, order="F"))[0] for _ in labels]
    cuts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [n]))
    run_labels = flat[starts]
    order = np.argsort(run_labels, kind="stable")  # runs grouped by label, in image order
    run_labels = run_labels[order]
    out = []
    for label in labels:
        runs = order[np.searchsorted(run_labels, label, "left"):np.searchsorted(run_labels, label, "right")]
        s, e = starts[runs], ends[runs]
        counts = np.empty(2 * len(runs) + 1, dtype=np.int64)  # gap, run, gap, run, ..., gap
        counts[0::2] = np.concatenate((s, [n])) - np.concatenate(([0], e))
        counts[1::2] = e - s
        if len(counts) > 1 and counts[-1] == 0:
            counts = counts[:-1]
        out.append(mask_util.frPyObjects({"counts": counts.tolist(), "size": [h, w]}, h, w))
    return out


def build_sem_seg_evaluator(
    dataset_name: str, output_dir: Optional[str] = None, distributed: bool = True
) -> SemSegEvaluator:
    """A ``SemSegEvaluator`` for a registered semantic-segmentation dataset.

    Args:
        dataset_name: a dataset with ``stuff_classes`` and ``ignore_label`` metadata whose dicts
            have ``file_name`` and ``sem_seg_file_name``. Each label file must have the size of the
            prediction (the input's ``height``×``width``).
        output_dir: where D2 writes ``sem_seg_predictions.json`` and ``sem_seg_evaluation.pth``.
        distributed: gather the confusion matrices of all ranks.
    """
    meta = MetadataCatalog.get(dataset_name)
    classes = meta.get("stuff_classes", None)
    ignore_label = meta.get("ignore_label", None)
    if not classes or ignore_label is None:
        raise ValueError(
            f"dataset {dataset_name!r} lacks stuff_classes or ignore_label metadata; it is not a "
            "registered semantic-segmentation dataset"
        )
    loader = SemSegLabelLoader(len(classes), ignore_label)
    return PixelCLIPSemSegEvaluator(
        dataset_name, distributed=distributed, output_dir=output_dir, sem_seg_loading_fn=loader
    )


def _metric(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def summarize_results(results: Mapping[str, Mapping]) -> Dict[str, Dict[str, Optional[float]]]:
    """dataset -> {mIoU, fwIoU, mACC, pACC, images} (None where missing or not finite); ``images`` is
    the number of evaluated images (``num_images`` of :class:`PixelCLIPSemSegEvaluator`). Each value
    of ``results`` is either the metrics dict or D2's ``{"sem_seg": metrics}``."""
    summary = {}
    for name, metrics in results.items():
        if isinstance(metrics.get("sem_seg"), Mapping):
            metrics = metrics["sem_seg"]
        summary[name] = {k: _metric(metrics.get(k)) for k in SUMMARY_METRICS}
        count = metrics.get("num_images")
        summary[name][SUMMARY_COUNT] = int(count) if count is not None else None
    return summary


def format_summary_table(summary: Mapping[str, Mapping[str, Optional[float]]]) -> str:
    """A Markdown table: one row per dataset, one column per metric of :data:`SUMMARY_METRICS`, and
    the number of evaluated images."""
    width = max(len("Dataset"), *(len(name) for name in summary))
    columns = SUMMARY_METRICS + (SUMMARY_COUNT,)
    header = f"| {'Dataset'.ljust(width)} | " + " | ".join(f"{m:>6}" for m in columns) + " |"
    rule = f"|{'-' * (width + 2)}|" + "|".join("-" * 7 + ":" for _ in columns) + "|"
    rows = [header, rule]
    for name, metrics in summary.items():
        cells = ["     -" if metrics.get(m) is None else f"{metrics[m]:6.2f}" for m in SUMMARY_METRICS]
        count = metrics.get(SUMMARY_COUNT)
        cells.append("     -" if count is None else f"{count:6d}")
        rows.append(f"| {name.ljust(width)} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def write_summary(results: Mapping[str, Mapping], output_dir: str) -> str:
    """Log one table of mIoU / fwIoU / mACC / pACC per dataset and save it as ``summary.json`` and
    ``summary.md`` in ``output_dir`` (atomic writes).

    Args:
        results: dataset name -> metrics (D2's ``SemSegEvaluator.evaluate()["sem_seg"]``, or the
            whole ``{"sem_seg": ...}`` dict).

    Returns:
        the Markdown table.
    """
    if not results:
        raise ValueError("write_summary: no results to summarize")
    summary = summarize_results(results)
    table = format_summary_table(summary)
    atomic_write(os.path.join(output_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
    atomic_write(os.path.join(output_dir, "summary.md"), table)
    logger.info("Semantic segmentation results (%%):\n%s", table)
    return table
