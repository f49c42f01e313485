"""Cityscapes-19 benchmark (validation, 500 images, the 19 train ids), for open-vocabulary
evaluation with the ``sem_seg`` evaluator.

Detectron2 already registers ``cityscapes_fine_sem_seg_val`` (evaluator_type
``cityscapes_sem_seg``, which needs cityscapesscripts and the polygon JSON files); it is left as it
is. ``cityscapes_19_val_sem_seg`` reads the same ``*_gtFine_labelTrainIds.png`` files::

    cityscapes/leftImg8bit/val/<city>/<stem>_leftImg8bit.png
    cityscapes/gtFine/val/<city>/<stem>_gtFine_labelTrainIds.png   # 8-bit, 0..18, 255 = ignore

made by ``datasets/prepare_cityscapes.py`` (or cityscapesscripts' createTrainIdLabelImgs.py).
"""
import os

from ..vocabulary import packaged_vocabulary
from ._sem_seg import datasets_root, register_sem_seg

CITYSCAPES_19_NAME = "cityscapes_19_val_sem_seg"


def register_cityscapes_19(root: str, name: str = CITYSCAPES_19_NAME) -> None:
    base = os.path.join(root, "cityscapes")
    register_sem_seg(
        name,
        image_root=os.path.join(base, "leftImg8bit", "val"),
        sem_seg_root=os.path.join(base, "gtFine", "val"),
        stuff_classes=packaged_vocabulary("cityscapes19"),
        ignore_label=255,
        gt_ext="png",
        image_ext="png",
        gt_suffix="_gtFine_labelTrainIds",
        image_suffix="_leftImg8bit",
        prepare_hint="datasets/prepare_cityscapes.py",
    )


register_cityscapes_19(datasets_root())
