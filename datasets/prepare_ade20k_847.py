#!/usr/bin/env python3
"""ADE20K-847 images and 16-bit labels for ``pixelclip_ade20k_full_sem_seg_freq_val_all``.

Input (the full ADE20K release ADE20K_2021_17_01, unzipped under the datasets root)::

    ADE20K_2021_17_01/images/ADE/validation/<scene folders>/ADE_val_*.jpg
    ADE20K_2021_17_01/images/ADE/validation/<scene folders>/ADE_val_*_seg.png

The object class of a pixel is ``R // 10 * 256 + G`` of its ``_seg.png`` (the ADE20K toolkit's
encoding; ids index ``objectnames`` of index_ade20k.pkl, which is not needed here). The 847 classes
of the benchmark (the field's list, Mask2Former / CAT-Seg) are mapped to 0..846 in frequency order;
every other pixel becomes 65535 (ignored).

Output (the field's recipe: images whose short side exceeds 512 are resized to 512, the label with
nearest-neighbour interpolation)::

    ADE20K_2021_17_01/images_detectron2/validation/ADE_val_*.jpg
    ADE20K_2021_17_01/annotations_detectron2/validation/ADE_val_*.tif   # 16-bit
"""

import cv2
import numpy as np
from PIL import Image

from _benchmark_prep import (
    LayoutError,
    Task,
    dataset_root,
    main_guard,
    make_parser,
    read_json_list,
    read_rgb,
    remap,
    require_dir,
    run_tasks,
    save_image_atomic,
    save_label_atomic,
)

IGNORE = 65535


def class_mask(seg_rgb: np.ndarray) -> np.ndarray:
    """H×W×3 ADE20K ``_seg.png`` -> H×W object class ids (R // 10 * 256 + G)."""
    r = seg_rgb[..., 0].astype(np.int32)
    g = seg_rgb[..., 1].astype(np.int32)
    return (r // 10) * 256 + g


def resized_size(height: int, width: int, max_short_side: int):
    """(h, w) after the recipe's resize, or None when the image is kept as it is."""
    if max_short_side <= 0:
        return None
    if width >= height > max_short_side:
        return max_short_side, round(width / float(height) * max_short_side)
    if height >= width > max_short_side:
        return round(height / float(width) * max_short_side), max_short_side
    return None


def convert(task: Task) -> None:
    image_path, seg_path = task.inputs["image"], task.inputs["seg"]
    image = read_rgb(image_path)
    labels = class_mask(read_rgb(seg_path))
    if labels.shape != image.shape[:2]:
        raise LayoutError(f"{seg_path} is {labels.shape} but {image_path} is {image.shape[:2]}")
    size = resized_size(*labels.shape, task.inputs["max_short_side"])
    if size is not None:
        h, w = size
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    out = remap(labels, task.inputs["id_map"], IGNORE, np.uint16)
    out_image, out_label = task.outputs
    save_image_atomic(Image.fromarray(image), out_image, "JPEG")
    save_label_atomic(out, out_label)


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--max-short-side", type=int, default=512, help="0 keeps the original size")
    args = parser.parse_args(argv)

    base = dataset_root(args.root) / "ADE20K_2021_17_01"
    src_dir = require_dir(base / "images" / "ADE" / "validation", "the ADE20K full release")
    ade_ids = read_json_list("ade847_ade_ids")
    if len(ade_ids) != 847:
        raise LayoutError(f"ade847_ade_ids.json lists {len(ade_ids)} ids, expected 847")
    id_map = {ade_id: train_id for train_id, ade_id in enumerate(ade_ids)}

    images = sorted(p for p in src_dir.rglob("ADE_val_*.jpg") if not p.name.startswith("."))
    if not images:
        raise LayoutError(f"no ADE_val_*.jpg images under {src_dir}")
    missing = [p for p in images if not p.with_name(p.stem + "_seg.png").is_file()]
    if missing:
        raise LayoutError(f"{len(missing)} images have no _seg.png, e.g. {missing[0]}")
    tasks = [
        Task(
            outputs=[
                base / "images_detectron2" / "validation" / p.name,
                base / "annotations_detectron2" / "validation" / (p.stem + ".tif"),
            ],
            inputs={
                "image": p,
                "seg": p.with_name(p.stem + "_seg.png"),
                "id_map": id_map,
                "max_short_side": args.max_short_side,
            },
        )
        for p in images
    ]
    run_tasks(tasks, convert, overwrite=args.overwrite, workers=args.workers, desc="ade20k-847")


if __name__ == "__main__":
    main_guard(main)
