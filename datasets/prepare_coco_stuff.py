#!/usr/bin/env python3
"""COCO-Stuff-171 labels for ``coco_2017_test_stuff_all_sem_seg``.

Input (under the datasets root)::

    coco-stuff/images/val2017/*.jpg              # COCO 2017 val2017.zip
    coco-stuff/annotations/val2017/*.png         # stuffthingmaps_trainval2017.zip

The stuffthingmaps hold 0-based COCO ids (0..181; 255 = unlabelled); 11 of the 182 ids are unused,
the other 171 map to 0..170 in id order.

Output: ``coco-stuff/annotations_detectron2/val2017/*.png`` (0..170, 255 = ignored).
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

# 0-based stuffthingmaps ids that no class uses (retired COCO thing ids); must match
# pixelclip/data/datasets/coco_stuff.py.
UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
ID_MAP = {i: k for k, i in enumerate(i for i in range(182) if i not in UNUSED_IDS)}


def convert(task: Task) -> None:
    src = task.inputs["label"]
    labels = read_label(src)
    if labels.dtype != np.uint8:
        raise LayoutError(f"{src}: expected an 8-bit stuffthingmap, got {labels.dtype}")
    save_label_atomic(remap(labels, ID_MAP, 255, np.uint8), task.outputs[0])


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--split", default="val2017", choices=["val2017", "train2017"])
    args = parser.parse_args(argv)

    base = dataset_root(args.root) / "coco-stuff"
    require_dir(base / "images" / args.split, f"the COCO {args.split} images")
    src_dir = require_dir(base / "annotations" / args.split, "the COCO-Stuff stuffthingmaps")
    sources = sorted(p for p in src_dir.glob("*.png") if not p.name.startswith("."))
    if not sources:
        raise LayoutError(f"no *.png stuffthingmaps in {src_dir}")
    out_dir = base / "annotations_detectron2" / args.split
    tasks = [Task(outputs=[out_dir / p.name], inputs={"label": p}) for p in sources]
    run_tasks(tasks, convert, overwrite=args.overwrite, workers=args.workers, desc="coco-stuff-171")


if __name__ == "__main__":
    main_guard(main)
