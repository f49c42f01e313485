"""COCO-Stuff-171 benchmark (COCO 2017 validation, 5000 images, 80 thing + 91 stuff classes).

Layout under ``$DETECTRON2_DATASETS`` (label folder made by ``datasets/prepare_coco_stuff.py``)::

    coco-stuff/images/val2017/*.jpg
    coco-stuff/annotations_detectron2/val2017/*.png   # 8-bit, 0..170, 255 = ignore
"""
import os
from typing import List

from ..vocabulary import packaged_vocabulary
from ._sem_seg import datasets_root, register_sem_seg

COCO_STUFF_171_NAME = "coco_2017_test_stuff_all_sem_seg"

# 0-based ids of the 182-id stuffthingmaps that no class uses (11 retired COCO thing ids).
COCO_STUFF_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)


def coco_stuff_used_ids() -> List[int]:
    """The 171 used 0-based stuffthingmaps ids, in contiguous-label order."""
    return [i for i in range(182) if i not in COCO_STUFF_UNUSED_IDS]


def register_coco_stuff_171(root: str, name: str = COCO_STUFF_171_NAME) -> None:
    """COCO-Stuff-171 validation; ``stuff_dataset_id_to_contiguous_id`` uses COCO's 1-based ids."""
    base = os.path.join(root, "coco-stuff")
    register_sem_seg(
        name,
        image_root=os.path.join(base, "images", "val2017"),
        sem_seg_root=os.path.join(base, "annotations_detectron2", "val2017"),
        stuff_classes=packaged_vocabulary("coco_stuff171"),
        ignore_label=255,
        gt_ext="png",
        image_ext="jpg",
        prepare_hint="datasets/prepare_coco_stuff.py",
        stuff_dataset_id_to_contiguous_id={
            i + 1: k for k, i in enumerate(coco_stuff_used_ids())
        },
    )


register_coco_stuff_171(datasets_root())
