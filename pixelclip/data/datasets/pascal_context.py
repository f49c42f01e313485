"""Pascal Context benchmarks (VOC2010 validation, 5105 images): Context-59, Context-459 and
Context-60 (the 59 classes plus "background", last).

Layout under ``$DETECTRON2_DATASETS`` (label folders made by ``datasets/prepare_pascal_context.py``)::

    VOCdevkit/VOC2010/JPEGImages/*.jpg
    VOCdevkit/VOC2010/annotations_detectron2/pc59_val/*.png    # 8-bit, 0..58, 255 = ignore
    VOCdevkit/VOC2010/annotations_detectron2/pc60_val/*.png    # 8-bit, 0..58 + 59 = background
    VOCdevkit/VOC2010/annotations_detectron2/pc459_val/*.tif   # 16-bit, 0..458, 65535 = ignore

``JPEGImages`` also holds the training images: the validation images are the ids listed in
``annotations_detectron2/val_ids.txt`` (written by the prepare script), else ``pascalcontext_val.txt``,
else VOC2010's ``ImageSets/Main/val.txt`` (the 5105 images of Pascal Context's validation split).
"""
import os

from ..vocabulary import packaged_vocabulary
from ._sem_seg import datasets_root, register_sem_seg

CONTEXT_59_NAME = "context_59_test_sem_seg"
CONTEXT_459_NAME = "context_459_test_sem_seg"
CONTEXT_60_NAME = "context_60_test_sem_seg"

_PREPARE = "datasets/prepare_pascal_context.py"


def _register(root: str, name: str, folder: str, vocabulary: str, ignore: int, ext: str) -> None:
    base = os.path.join(root, "VOCdevkit", "VOC2010")
    register_sem_seg(
        name,
        image_root=os.path.join(base, "JPEGImages"),
        sem_seg_root=os.path.join(base, "annotations_detectron2", folder),
        stuff_classes=packaged_vocabulary(vocabulary),
        ignore_label=ignore,
        gt_ext=ext,
        image_ext="jpg",
        prepare_hint=_PREPARE,
        split_files=(os.path.join(base, "annotations_detectron2", "val_ids.txt"),
                     os.path.join(base, "pascalcontext_val.txt"),
                     os.path.join(base, "ImageSets", "Main", "val.txt")),
    )


def register_context_59(root: str, name: str = CONTEXT_59_NAME) -> None:
    """Pascal Context-59: the 59 frequent classes; everything else is ignored."""
    _register(root, name, "pc59_val", "pc59", 255, "png")


def register_context_459(root: str, name: str = CONTEXT_459_NAME) -> None:
    """Pascal Context-459: all classes of the full annotation (16-bit labels)."""
    _register(root, name, "pc459_val", "pc459", 65535, "tif")


def register_context_60(root: str, name: str = CONTEXT_60_NAME) -> None:
    """Pascal Context-60: the 59 classes plus "background" (label 59) for every other pixel."""
    _register(root, name, "pc60_val", "pc60", 255, "png")


def register_all_pascal_context(root: str) -> None:
    register_context_59(root)
    register_context_459(root)
    register_context_60(root)


register_all_pascal_context(datasets_root())
