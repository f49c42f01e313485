#!/usr/bin/env python3
"""Pascal VOC 2012 labels for ``voc_2012_test_sem_seg`` (20 classes) and
``voc_2012_test_background_sem_seg`` (21: the 20 classes and background).

Input (under the datasets root, VOCtrainval_11-May-2012.tar)::

    VOCdevkit/VOC2012/JPEGImages/*.jpg
    VOCdevkit/VOC2012/SegmentationClass/*.png          # palette PNG: 0 = background, 1..20, 255 = border
    VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt

(``--source SegmentationClassAug`` reads the SBD-augmented grey-level labels instead.)

Output::

    VOCdevkit/VOC2012/annotations_detectron2/val/*.png      # 0..19, 255 = background / border
    VOCdevkit/VOC2012/annotations_detectron2_bg/val/*.png   # 0..19, 20 = background, 255 = border
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
    require_file,
    run_tasks,
    save_label_atomic,
)

CLASS_MAP = {k: k - 1 for k in range(1, 21)}


def convert(task: Task) -> None:
    src = task.inputs["label"]
    labels = read_label(src).astype(np.int64)
    bad = np.setdiff1d(np.unique(labels), list(range(21)) + [255])
    if bad.size:
        raise LayoutError(f"{src}: unexpected values {bad[:5].tolist()} (not a VOC class-index PNG)")
    out20, out21 = task.outputs
    save_label_atomic(remap(labels, {**CLASS_MAP, 0: 255}, 255, np.uint8), out20)
    save_label_atomic(remap(labels, {**CLASS_MAP, 0: 20}, 255, np.uint8), out21)


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--split", default="val", choices=["val", "train", "trainval"])
    parser.add_argument("--source", default="SegmentationClass",
                        choices=["SegmentationClass", "SegmentationClassAug"])
    args = parser.parse_args(argv)

    base = dataset_root(args.root) / "VOCdevkit" / "VOC2012"
    require_dir(base / "JPEGImages", "the VOC2012 images (VOCtrainval_11-May-2012.tar)")
    src_dir = require_dir(base / args.source, f"the VOC2012 {args.source} labels")
    split = require_file(base / "ImageSets" / "Segmentation" / f"{args.split}.txt", "the split list")
    ids = [line.strip() for line in split.read_text().splitlines() if line.strip()]
    if not ids:
        raise LayoutError(f"{split} lists no images")
    missing = [i for i in ids if not (src_dir / f"{i}.png").is_file()]
    if missing:
        raise LayoutError(f"{len(missing)} ids of {split} have no label in {src_dir}, e.g. {missing[0]}")
    tasks = [
        Task(
            outputs=[
                base / "annotations_detectron2" / args.split / f"{i}.png",
                base / "annotations_detectron2_bg" / args.split / f"{i}.png",
            ],
            inputs={"label": src_dir / f"{i}.png"},
        )
        for i in ids
    ]
    run_tasks(tasks, convert, overwrite=args.overwrite, workers=args.workers, desc="voc2012")


if __name__ == "__main__":
    main_guard(main)
