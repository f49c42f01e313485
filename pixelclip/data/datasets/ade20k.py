"""ADE20K benchmarks: ADE20K-150 (``ADEChallengeData2016``) and ADE20K-847 (``ADE20K_2021_17_01``).

Layouts under ``$DETECTRON2_DATASETS`` (label folders made by ``datasets/prepare_ade20k_*.py``)::

    ADEChallengeData2016/images/validation/*.jpg
    ADEChallengeData2016/annotations_detectron2/validation/*.png   # 8-bit, 0..149, 255 = ignore
    ADE20K_2021_17_01/images_detectron2/validation/*.jpg
    ADE20K_2021_17_01/annotations_detectron2/validation/*.tif      # 16-bit, 0..846, 65535 = ignore
"""
import os
from typing import List

from ..vocabulary import packaged_vocabulary
from ._sem_seg import datasets_root, register_sem_seg

ADE20K_150_NAME = "ade20k_150_test_sem_seg"
# The field's name for ADE20K-847 comes from ZegFormer, whose mask_former registers it on import
# (mask_former/data/datasets/register_ade20k_full_zero_freq.py). Detectron2 refuses a second registration,
# so this plugin registers only the prefixed name: the two share a process in either import order.
ADE20K_847_NAME = "ade20k_full_sem_seg_freq_val_all"
ADE20K_847_REGISTERED_NAME = "pixelclip_" + ADE20K_847_NAME


def register_ade20k_150(root: str, name: str = ADE20K_150_NAME) -> List[str]:
    """ADE20K-150 validation (2000 images, 150 classes); returns the names registered."""
    base = os.path.join(root, "ADEChallengeData2016")
    return register_sem_seg(
        name,
        image_root=os.path.join(base, "images", "validation"),
        sem_seg_root=os.path.join(base, "annotations_detectron2", "validation"),
        stuff_classes=packaged_vocabulary("ade150"),
        ignore_label=255,
        gt_ext="png",
        image_ext="jpg",
        prepare_hint="datasets/prepare_ade20k_150.py",
    )


def register_ade20k_847(root: str, name: str = ADE20K_847_NAME) -> List[str]:
    """ADE20K-847 validation (2000 images, 847 classes, 16-bit labels), as ``pixelclip_<name>`` only."""
    base = os.path.join(root, "ADE20K_2021_17_01")
    return register_sem_seg(
        name,
        image_root=os.path.join(base, "images_detectron2", "validation"),
        sem_seg_root=os.path.join(base, "annotations_detectron2", "validation"),
        stuff_classes=packaged_vocabulary("ade847"),
        ignore_label=65535,
        gt_ext="tif",
        image_ext="jpg",
        prepare_hint="datasets/prepare_ade20k_847.py",
        alias=False,
    )


def register_all_ade20k(root: str) -> None:
    register_ade20k_150(root)
    register_ade20k_847(root)


register_all_ade20k(datasets_root())
