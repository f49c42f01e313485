"""The synthetic world (``pixelclip/synthetic``) as Detectron2 datasets.

Registered on import, under ``$DETECTRON2_DATASETS/synthetic_parts`` (default ``datasets/synthetic_parts``;
the world of parts, :mod:`pixelclip.synthetic.world`):

- ``synthetic_train``: unlabeled training images + SA-1B-style SAM-like masks (no labels);
- ``synthetic_train_random_masks``: the same images with the random-mask control;
- ``synthetic_val_sem_seg``: labelled validation images (label PNGs, ``stuff_classes``),
  evaluated by ``SemSegEvaluator``.

The files are generated on first use (``DatasetCatalog.get``), deterministically, by
:func:`pixelclip.synthetic.storage.ensure_world`; nothing is read or written at import.
Other sizes or roots: ``$PIXELCLIP_SYNTHETIC_ROOT`` (a folder) and ``$PIXELCLIP_SYNTHETIC_SIZE``
(``"TRAIN,VAL"`` image counts, default ``"1000,200"``) change the default registration (the demo
passes them to its subprocesses); :func:`register_synthetic_world` registers more worlds.
"""
import os
from typing import Any, Dict, List, Optional, Tuple

from ...synthetic.storage import WorldSpec, ensure_world
from ...synthetic.world import world_metadata
from ..registry import register_dataset
from ._sem_seg import datasets_root, load_sem_seg_pairs
from .unlabeled_folder import load_unlabeled_folder

__all__ = ["default_world", "register_synthetic_world", "SYNTHETIC_DATASETS"]

SYNTHETIC_DATASETS = ("synthetic_train", "synthetic_train_random_masks", "synthetic_val_sem_seg")
DEFAULT_FOLDER = "synthetic_parts"  # under $DETECTRON2_DATASETS (a world of another layout lived in "synthetic")


def _train_dicts(root: str, spec: WorldSpec, mask_dir: str) -> List[Dict[str, Any]]:
    ensure_world(root, spec)
    return load_unlabeled_folder(os.path.join(root, "train", "images"), os.path.join(root, "train", mask_dir))


def _val_dicts(root: str, spec: WorldSpec) -> List[Dict[str, Any]]:
    ensure_world(root, spec)
    return load_sem_seg_pairs(os.path.join(root, "val", "images"), os.path.join(root, "val", "labels"),
                              gt_ext="png", image_ext="png")


def default_world() -> Tuple[str, WorldSpec]:
    """Root and spec of the default registration, from the environment (see the module docstring)."""
    root = os.environ.get("PIXELCLIP_SYNTHETIC_ROOT") or os.path.join(datasets_root(), DEFAULT_FOLDER)
    size = os.environ.get("PIXELCLIP_SYNTHETIC_SIZE", "")
    if not size:
        return root, WorldSpec()
    try:
        num_train, num_val = (int(v) for v in size.split(","))
        if num_train <= 0 or num_val <= 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"PIXELCLIP_SYNTHETIC_SIZE={size!r}: expected two positive integers 'TRAIN,VAL', "
                         "e.g. '1000,200'") from None
    return root, WorldSpec(num_train=num_train, num_val=num_val)


def register_synthetic_world(prefix: str = "synthetic", root: Optional[str] = None,
                             spec: WorldSpec = WorldSpec()) -> None:
    """Register ``<prefix>_train``, ``<prefix>_train_random_masks`` and ``<prefix>_val_sem_seg``.

    Arguments:
        prefix: dataset-name prefix.
        root: folder of the world's files (default ``$DETECTRON2_DATASETS/synthetic_parts``).
        spec: split sizes, world and mask-noise parameters (must match what ``root`` holds).
    """
    root = os.path.abspath(root or os.path.join(datasets_root(), DEFAULT_FOLDER))
    meta = world_metadata()
    for suffix, mask_dir in (("train", "masks"), ("train_random_masks", "random_masks")):
        name = f"{prefix}_{suffix}"
        register_dataset(
            name, lambda r=root, s=spec, m=mask_dir: _train_dicts(r, s, m),
            image_root=os.path.join(root, "train", "images"), mask_root=os.path.join(root, "train", mask_dir),
            evaluator_type="unlabeled", stuff_classes=meta["stuff_classes"])
    register_dataset(
        f"{prefix}_val_sem_seg", lambda r=root, s=spec: _val_dicts(r, s),
        image_root=os.path.join(root, "val", "images"), sem_seg_root=os.path.join(root, "val", "labels"),
        evaluator_type="sem_seg", **meta)


_root, _spec = default_world()
register_synthetic_world(root=_root, spec=_spec)
