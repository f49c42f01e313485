"""Unlabeled training sets: an images folder plus a folder of per-image mask files.

``images/a/b.jpg`` pairs with ``masks/a/b.json`` (SA-1B schema, see :mod:`pixelclip.data.mask_io`).
The two folders may be the same (SA-1B tars extract image and JSON side by side). Dataset dicts
are built from two directory listings only: no image or mask file is opened at registration or
loading, so 100k+ images list in about a second; the mapper reads and validates each file.

Any folder pair is registered with :func:`register_unlabeled_folder`. On import, every
``$DETECTRON2_DATASETS/unlabeled/<name>/`` holding an ``images/`` folder (and usually ``masks/``)
is registered as ``unlabeled_<name>``.
"""
import logging
import os
from typing import Any, Dict, List, Optional

from detectron2.data import DatasetCatalog

from ...errors import DatasetError
from ...utils.files import IMAGE_EXTENSIONS, MASK_SUFFIX, list_files
from ..registry import register_dataset

__all__ = [
    "load_unlabeled_folder",
    "register_unlabeled_folder",
]

logger = logging.getLogger(__name__)

def _image_id(rel_path: str) -> str:
    return os.path.splitext(rel_path)[0]


def load_unlabeled_folder(image_root: str, mask_root: Optional[str] = None) -> List[Dict[str, Any]]:
    """Dataset dicts of an unlabeled folder pair.

    Args:
        image_root: folder of images (searched recursively).
        mask_root: folder of mask files mirroring ``image_root``; None for images without masks
            (masks then come online, ``MODEL.DINO.ENABLED``).
    Returns:
        ``[{"file_name": image path, "mask_file": json path (when mask_root), "image_id": str}]``,
        sorted by path. Images without a mask file are left out (counted in the log).
    """
    if not os.path.isdir(image_root):
        raise DatasetError(f"Unlabeled dataset: image folder {image_root!r} does not exist",
                           "check the path (or $DETECTRON2_DATASETS), see datasets/README.md")
    images = list_files(image_root, IMAGE_EXTENSIONS)
    if not images:
        raise DatasetError(f"Unlabeled dataset: no image ({', '.join(IMAGE_EXTENSIONS)}) under {image_root!r}",
                           "put the training images there, see datasets/README.md")
    if mask_root is None:
        return [{"file_name": os.path.join(image_root, rel), "image_id": _image_id(rel)} for rel in images]

    if not os.path.isdir(mask_root):
        raise DatasetError(
            f"Unlabeled dataset: mask folder {mask_root!r} does not exist",
            f"generate masks with tools/generate_masks.py --input {image_root} --output {mask_root}")
    masks = set(list_files(mask_root, (MASK_SUFFIX,)))
    dicts, missing = [], []
    for rel in images:
        rel_mask = _image_id(rel) + MASK_SUFFIX
        if rel_mask in masks:
            dicts.append({
                "file_name": os.path.join(image_root, rel),
                "mask_file": os.path.join(mask_root, rel_mask),
                "image_id": _image_id(rel),
            })
        else:
            missing.append(rel)
    if missing:
        logger.warning(
            f"Unlabeled dataset {image_root}: {len(missing)} of {len(images)} images have no mask "
            f"file under {mask_root} and are left out (e.g. {', '.join(missing[:3])})")
    if not dicts:
        raise DatasetError(
            f"Unlabeled dataset: none of the {len(images)} images under {image_root!r} has a mask "
            f"file under {mask_root!r} (expected e.g. {os.path.join(mask_root, _image_id(images[0]) + MASK_SUFFIX)})",
            f"generate masks with tools/generate_masks.py --input {image_root} --output {mask_root}")
    logger.info(f"Unlabeled dataset {image_root}: {len(dicts)} images with masks")
    return dicts


def register_unlabeled_folder(
    name: str, image_root: str, mask_root: Optional[str] = None, **metadata: Any
) -> None:
    """Register an images folder (+ masks folder) as the training set ``name``.

    Loading is lazy (on ``DatasetCatalog.get(name)``); also registered as ``pixelclip_<name>``
    (:func:`pixelclip.data.registry.register_dataset`). Metadata: ``image_root``, ``mask_root``,
    ``evaluator_type="unlabeled"`` and any extra ``metadata``.
    """
    register_dataset(name, lambda: load_unlabeled_folder(image_root, mask_root),
                     image_root=image_root, mask_root=mask_root, evaluator_type="unlabeled", **metadata)


def register_all_unlabeled(root: str) -> None:
    """Register ``unlabeled_<name>`` for each ``<root>/unlabeled/<name>/images`` (masks from the
    sibling ``masks/`` folder when it exists)."""
    base = os.path.join(root, "unlabeled")
    if not os.path.isdir(base):
        return
    for name in sorted(os.listdir(base)):
        image_root = os.path.join(base, name, "images")
        if not os.path.isdir(image_root):
            continue
        mask_root = os.path.join(base, name, "masks")
        dataset_name = f"unlabeled_{name}"
        if dataset_name not in DatasetCatalog.list():
            register_unlabeled_folder(dataset_name, image_root, mask_root if os.path.isdir(mask_root) else None)


register_all_unlabeled(os.getenv("DETECTRON2_DATASETS", "datasets"))
