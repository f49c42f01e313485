#!/usr/bin/env python3
"""ADE20K-150 labels for ``ade20k_150_test_sem_seg``.

Input (the official ADEChallengeData2016.zip, unzipped under the datasets root)::

    ADEChallengeData2016/images/validation/ADE_val_*.jpg
    ADEChallengeData2016/annotations/validation/ADE_val_*.png    # 0 = other, 1..150 = classes

Output: ``ADEChallengeData2016/annotations_detectron2/validation/*.png`` with 0..149 (id - 1) and
255 for "other" (ignored).
"""
import numpy as np

from _benchmark_prep import (
    LayoutError,
    Task,
    dataset_root,
    main_guard,
    make_parser,
    read_label,
    require_dir,
    run_tasks,
    save_label_atomic,
)

NUM_CLASSES = 150


def convert(task: Task) -> None:
    src = task.inputs["label"]
    labels = read_label(src).astype(np.int64)
    if labels.max(initial=0) > NUM_CLASSES:
        raise LayoutError(f"{src}: class id {labels.max()} > {NUM_CLASSES}; not an ADE-150 annotation")
    out = labels - 1
    out[out < 0] = 255
    save_label_atomic(out.astype(np.uint8), task.outputs[0])


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--split", default="validation", choices=["validation", "training"])
    args = parser.parse_args(argv)

    base = dataset_root(args.root) / "ADEChallengeData2016"
    require_dir(base / "images" / args.split, "the ADE20K-150 images (ADEChallengeData2016.zip)")
    src_dir = require_dir(base / "annotations" / args.split, "the ADE20K-150 annotations")
    out_dir = base / "annotations_detectron2" / args.split
    sources = sorted(p for p in src_dir.glob("*.png") if not p.name.startswith("."))
    if not sources:
        raise LayoutError(f"no *.png annotations in {src_dir}")
    tasks = [Task(outputs=[out_dir / p.name], inputs={"label": p}) for p in sources]
    run_tasks(tasks, convert, overwrite=args.overwrite, workers=args.workers, desc="ade20k-150")


if __name__ == "__main__":
    main_guard(main)
