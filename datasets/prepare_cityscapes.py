#!/usr/bin/env python3
"""Cityscapes train-id labels for ``cityscapes_19_val_sem_seg`` (and D2's
``cityscapes_fine_sem_seg_val``), without cityscapesscripts.

Input (under the datasets root: leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip)::

    cityscapes/leftImg8bit/val/<city>/<stem>_leftImg8bit.png
    cityscapes/gtFine/val/<city>/<stem>_gtFine_labelIds.png

Output, beside the input as cityscapesscripts' createTrainIdLabelImgs.py names it::

    cityscapes/gtFine/val/<city>/<stem>_gtFine_labelTrainIds.png   # 0..18, 255 = ignored

The label-id -> train-id table is the official one (cityscapesscripts/helpers/labels.py).
"""

import numpy as np

from _benchmark_prep import (
    LayoutError,
    Task,
    dataset_root,
    main_guard,
    make_parser,
    read_label,
    remap,
    require_dir,
    run_tasks,
    save_label_atomic,
)

# label id -> train id for the 19 evaluated classes; every other id is ignored (255).
LABEL_TO_TRAIN_ID = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}
SUFFIX_IN, SUFFIX_OUT = "_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"


def convert(task: Task) -> None:
    labels = read_label(task.inputs["label"])
    save_label_atomic(remap(labels, LABEL_TO_TRAIN_ID, 255, np.uint8), task.outputs[0])


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--split", default="val", choices=["val", "train", "test"])
    args = parser.parse_args(argv)

    base = dataset_root(args.root) / "cityscapes"
    require_dir(base / "leftImg8bit" / args.split, "the Cityscapes images (leftImg8bit_trainvaltest.zip)")
    src_dir = require_dir(base / "gtFine" / args.split, "the Cityscapes labels (gtFine_trainvaltest.zip)")
    sources = sorted(p for p in src_dir.rglob(f"*{SUFFIX_IN}") if not p.name.startswith("."))
    if not sources:
        raise LayoutError(f"no *{SUFFIX_IN} files under {src_dir}")
    tasks = [
        Task(outputs=[p.with_name(p.name[: -len(SUFFIX_IN)] + SUFFIX_OUT)], inputs={"label": p})
        for p in sources
    ]
    run_tasks(tasks, convert, overwrite=args.overwrite, workers=args.workers, desc="cityscapes-19")


if __name__ == "__main__":
    main_guard(main)
