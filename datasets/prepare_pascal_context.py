#!/usr/bin/env python3
"""Pascal Context labels for ``context_59_test_sem_seg``, ``context_60_test_sem_seg`` and
``context_459_test_sem_seg`` (the VOC2010 validation split, 5105 images).

Input (under the datasets root)::

    VOCdevkit/VOC2010/JPEGImages/*.jpg            # VOCtrainval_03-May-2010.tar
    VOCdevkit/VOC2010/trainval_merged.json        # 59 classes + background (Detail API json), for 59 / 60
    VOCdevkit/VOC2010/trainval/*.mat              # full annotation (trainval.tar.gz), for 459
    VOCdevkit/VOC2010/pascalcontext_val.txt       # optional list of validation ids

The json is read with ``json`` + ``pycocotools`` (no detail-api needed): its segments carry the
1-based ids of the 459-class list; they are painted in file order. The ``.mat`` files are read with
``scipy.io`` (``LabelMap``, 1-based ids of the 459 classes).

Validation ids: ``--split-file``, else pascalcontext_val.txt, else the json's images whose
``phase`` is "val", else ImageSets/Main/val.txt.

Output::

    annotations_detectron2/pc59_val/*.png    # 0..58, 255 = everything else (ignored)
    annotations_detectron2/pc60_val/*.png    # 0..58, 59 = background (last)
    annotations_detectron2/pc459_val/*.tif   # 16-bit, 0..458, 65535 = unlabelled (ignored)
    annotations_detectron2/val_ids.txt       # the validation ids used (the registration checks
                                             # that every one of them has its label file)

Segments whose category is not one of the 59 classes (none in trainval_merged.json) are ignored
(255) in both pc59 and pc60.
"""
import json
from pathlib import Path
from typing import Dict, List

import numpy as np

from _benchmark_prep import (
    LayoutError,
    Task,
    dataset_root,
    main_guard,
    make_parser,
    read_json_list,
    remap,
    require_dir,
    require_file,
    run_tasks,
    save_label_atomic,
    save_text_atomic,
)

ALL_TASKS = ("59", "60", "459")


def pc59_ids_in_459() -> List[int]:
    """The 1-based 459-class ids of the 59 classes, in Context-59 label order ("diningtable" is
    "table" in the 459 list)."""
    pc459 = read_json_list("pc459")
    index = {name: i + 1 for i, name in enumerate(pc459)}
    return [index["table" if name == "diningtable" else name] for name in read_json_list("pc59")]


def decode_segments(annos: List[Dict], height: int, width: int, where: str) -> np.ndarray:
    """Paint the segments' ``category_id`` into an H×W map (0 where no segment lies)."""
    from pycocotools import mask as mask_utils

    out = np.zeros((height, width), dtype=np.int64)
    for ann in annos:
        seg = ann["segmentation"]
        if isinstance(seg, list):  # polygons
            seg = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg.get("counts"), list):  # uncompressed RLE
            seg = mask_utils.frPyObjects(seg, height, width)
        if list(seg["size"]) != [height, width]:
            raise LayoutError(f"{where}: a segment of size {seg['size']} on a {height}×{width} image")
        out[mask_utils.decode(seg) > 0] = int(ann["category_id"])
    return out


def convert_59_60(task: Task) -> None:
    inp = task.inputs
    labels = decode_segments(inp["annos"], inp["height"], inp["width"], inp["where"])
    mapping = {cat: k for k, cat in enumerate(inp["pc59_ids"])}
    for kind, path in zip(inp["kinds"], task.outputs):
        table = dict(mapping)
        table[0] = 255 if kind == "59" else 59
        save_label_atomic(remap(labels, table, 255, np.uint8), path)


def convert_459(task: Task) -> None:
    import scipy.io

    src = task.inputs["mat"]
    try:
        mat = scipy.io.loadmat(str(src))
    except FileNotFoundError:
        raise LayoutError(f"missing input file {src}") from None
    except Exception as e:  # scipy raises several types for a broken file
        raise LayoutError(f"{src} is not a readable .mat file ({e})") from None
    if "LabelMap" not in mat:
        raise LayoutError(f"{src} has no 'LabelMap' (is it from the 459-class trainval.tar.gz?)")
    labels = np.asarray(mat["LabelMap"]).astype(np.int64)
    if labels.max(initial=0) > 459:
        raise LayoutError(f"{src}: class id {labels.max()} > 459")
    out = labels - 1
    out[labels <= 0] = 65535
    save_label_atomic(out.astype(np.uint16), task.outputs[0])


def read_ids(path: Path) -> List[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--tasks", nargs="+", default=list(ALL_TASKS), choices=ALL_TASKS)
    parser.add_argument("--split-file", default=None, help="file with one validation id a line")
    args = parser.parse_args(argv)

    base = dataset_root(args.root) / "VOCdevkit" / "VOC2010"
    require_dir(base / "JPEGImages", "the VOC2010 images (VOCtrainval_03-May-2010.tar)")
    out_root = base / "annotations_detectron2"
    kinds = [k for k in ("59", "60") if k in args.tasks]

    data = None
    if kinds:
        json_path = require_file(base / "trainval_merged.json", "the Pascal Context-59 annotation")
        try:
            data = json.loads(json_path.read_text())
            images = {int(im["image_id"]): im for im in data["images"]}
            segments = data["annos_segmentation"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise LayoutError(f"{json_path} is not the Detail-API trainval_merged.json ({e})") from None

    if args.split_file:
        ids = read_ids(require_file(Path(args.split_file), "the split file"))
    elif (base / "pascalcontext_val.txt").is_file():
        ids = read_ids(base / "pascalcontext_val.txt")
    elif data is not None:
        ids = sorted(Path(im["file_name"]).stem for im in images.values() if im.get("phase") == "val")
    else:
        ids = read_ids(require_file(base / "ImageSets" / "Main" / "val.txt", "the VOC2010 val list"))
    if not ids:
        raise LayoutError("the validation id list is empty")
    save_text_atomic("\n".join(ids) + "\n", out_root / "val_ids.txt")

    if kinds:
        by_stem = {Path(im["file_name"]).stem: im for im in images.values()}
        unknown = [i for i in ids if i not in by_stem]
        if unknown:
            raise LayoutError(
                f"{len(unknown)} validation ids are not in trainval_merged.json, e.g. {unknown[0]}"
            )
        wanted = {int(by_stem[i]["image_id"]) for i in ids}
        annos: Dict[int, List[Dict]] = {k: [] for k in wanted}
        for ann in segments:
            if int(ann["image_id"]) in annos:
                annos[int(ann["image_id"])].append(ann)
        pc59_ids = pc59_ids_in_459()
        tasks = []
        for stem in ids:
            im = by_stem[stem]
            tasks.append(
                Task(
                    outputs=[out_root / f"pc{k}_val" / f"{stem}.png" for k in kinds],
                    inputs={
                        "annos": annos[int(im["image_id"])],
                        "height": int(im["height"]),
                        "width": int(im["width"]),
                        "kinds": kinds,
                        "pc59_ids": pc59_ids,
                        "where": f"trainval_merged.json image {stem}",
                    },
                )
            )
        run_tasks(tasks, convert_59_60, overwrite=args.overwrite, workers=args.workers,
                  desc="pascal-context-" + "/".join(kinds))

    if "459" in args.tasks:
        mat_dir = require_dir(base / "trainval", "the 459-class .mat annotations (trainval.tar.gz)")
        missing = [i for i in ids if not (mat_dir / f"{i}.mat").is_file()]
        if missing:
            raise LayoutError(f"{len(missing)} validation ids have no .mat in {mat_dir}, e.g. {missing[0]}")
        tasks = [
            Task(outputs=[out_root / "pc459_val" / f"{i}.tif"], inputs={"mat": mat_dir / f"{i}.mat"})
            for i in ids
        ]
        run_tasks(tasks, convert_459, overwrite=args.overwrite, workers=args.workers,
                  desc="pascal-context-459")


if __name__ == "__main__":
    main_guard(main)
