"""SA-1B (Kirillov et al., "Segment Anything", 2023): images with SAM's automatic masks.

Two layouts under a root (detected when the dataset is loaded):

- prepared (``datasets/prepare_sa1b.py``): ``images/sa_000020/sa_223750.jpg`` and
  ``annotations/sa_000020/sa_223750.json``;
- as extracted from the tars: ``sa_000020/sa_223750.jpg`` beside ``sa_000020/sa_223750.json``.

Registered names (roots under ``$DETECTRON2_DATASETS``, default ``datasets/``):
``sa1b_train`` -> ``sa1b/`` (the resized subset the release trained on, short side 750) and
``sa1b_raw_train`` -> ``sa1b_raw/`` (full-resolution tars, short side 1500).
"""
import os
import re
from typing import Any, Dict, List, Tuple

from ...errors import DatasetError
from ..registry import register_dataset
from .unlabeled_folder import load_unlabeled_folder

__all__ = ["sa1b_layout", "load_sa1b", "register_sa1b"]

_SA1B_DATASETS = {
    "sa1b_train": "sa1b",
    "sa1b_raw_train": "sa1b_raw",
}
_SA_ID = re.compile(r"sa_(\d+)$")


def sa1b_layout(root: str) -> Tuple[str, str]:
    """(image_root, mask_root) of an SA-1B root in either layout."""
    images, annotations = os.path.join(root, "images"), os.path.join(root, "annotations")
    if os.path.isdir(images):
        return images, annotations
    return root, root


def load_sa1b(root: str) -> List[Dict[str, Any]]:
    """Dataset dicts of an SA-1B root (no file is opened); ``image_id`` is the number in
    ``sa_<number>.jpg``."""
    if not os.path.isdir(root):
        raise DatasetError(
            f"SA-1B root {root!r} does not exist",
            "download and prepare it (datasets/README.md, SA-1B), or set $DETECTRON2_DATASETS to the folder "
            "holding sa1b/")
    image_root, mask_root = sa1b_layout(root)
    dicts = load_unlabeled_folder(image_root, mask_root)
    for d in dicts:
        match = _SA_ID.search(d["image_id"])
        if match:
            d["image_id"] = int(match.group(1))
    return dicts


def register_sa1b(name: str, root: str) -> None:
    """Register the SA-1B root ``root`` as the training set ``name`` (lazy; also ``pixelclip_<name>``)."""
    register_dataset(name, lambda: load_sa1b(root), root=root, evaluator_type="unlabeled")


def register_all_sa1b(datasets_root: str) -> None:
    for name, folder in _SA1B_DATASETS.items():
        register_sa1b(name, os.path.join(datasets_root, folder))


register_all_sa1b(os.getenv("DETECTRON2_DATASETS", "datasets"))
