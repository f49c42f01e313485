"""Pascal VOC 2012 benchmarks (validation, 1449 images): VOC-20 (background ignored) and VOC-21
(the 20 classes plus "background", last).

Layout under ``$DETECTRON2_DATASETS`` (label folders made by ``datasets/prepare_voc.py``)::

    VOCdevkit/VOC2012/JPEGImages/*.jpg
    VOCdevkit/VOC2012/annotations_detectron2/val/*.png      # 8-bit, 0..19, 255 = ignore
    VOCdevkit/VOC2012/annotations_detectron2_bg/val/*.png   # 8-bit, 0..19 + 20 = background

``JPEGImages`` also holds the training images: the validation images are the ids of
``ImageSets/Segmentation/val.txt`` (part of the official download).
"""
import os

from ..vocabulary import packaged_vocabulary
from ._sem_seg import datasets_root, register_sem_seg

VOC_20_NAME = "voc_2012_test_sem_seg"
VOC_21_NAME = "voc_2012_test_background_sem_seg"


def _register(root: str, name: str, folder: str, vocabulary: str) -> None:
    base = os.path.join(root, "VOCdevkit", "VOC2012")
    register_sem_seg(
        name,
        image_root=os.path.join(base, "JPEGImages"),
        sem_seg_root=os.path.join(base, folder, "val"),
        stuff_classes=packaged_vocabulary(vocabulary),
        ignore_label=255,
        gt_ext="png",
        image_ext="jpg",
        prepare_hint="datasets/prepare_voc.py",
        split_files=(os.path.join(base, "ImageSets", "Segmentation", "val.txt"),),
    )


def register_voc_20(root: str, name: str = VOC_20_NAME) -> None:
    """VOC-20: the 20 object classes; background and object borders are ignored."""
    _register(root, name, "annotations_detectron2", "voc20")


def register_voc_21(root: str, name: str = VOC_21_NAME) -> None:
    """VOC-21: the 20 object classes plus "background" (label 20); borders are ignored."""
    _register(root, name, "annotations_detectron2_bg", "voc21")


def register_all_pascal_voc(root: str) -> None:
    register_voc_20(root)
    register_voc_21(root)


register_all_pascal_voc(datasets_root())
