#!/usr/bin/env python
"""Resize an SA-1B subset (images and their RLE masks together) to a short side, resumably.

SA-1B images have a short side of 1500 px; the PixelCLIP release trained on a subset resized to
half (short side 750), which makes RLE decoding, the data loader's bottleneck, ~4x cheaper. The subset
is the 100 SA-1B tars listed in ``datasets/sa1b.txt`` (the release's own list, about 10 % of SA-1B).

    python datasets/prepare_sa1b.py --input /data/sa1b_raw --output datasets/sa1b --workers 8 \
        --tars datasets/sa1b.txt

The release ships no code for the halving itself (its ``prepare_sa1b.py`` only indexes the files and its
README describes the resize in one sentence), so the resize here is a reconstruction: images bilinear
(PIL) and saved as JPEG (``--quality``), masks nearest on pixel centres.

--input holds the extracted tars (``sa_000020/sa_223750.jpg`` beside ``sa_000020/sa_223750.json``,
or a flat folder); --output receives ``images/<folder>/<name>.jpg`` and
``annotations/<folder>/<name>.json`` (the layout of the ``sa1b_train`` dataset). Each output file
is written atomically and the mask file last, so rerunning the command skips finished images
and redoes interrupted ones. Masks are resized with PIL-style nearest-neighbour sampling (pixel
centres, as the image), boxes and areas are recomputed, point and crop coordinates are scaled.
"""
import argparse
import json
import logging
import os
import shutil
import sys
from multiprocessing import Pool
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from pixelclip.data.mask_io import (
    MaskFileError,
    decode_masks,
    encode_masks,
    read_mask_file,
    write_mask_file,
)
from pixelclip.utils.files import IMAGE_EXTENSIONS, list_files
from pixelclip.utils.io import atomic_write, remove_stale_temp_files

logger = logging.getLogger("pixelclip.datasets.prepare_sa1b")

_CHUNK = 32  # masks resized at once
_SCALED_POINT_KEYS = ("point_coords", "crop_box")


def resized_size(height: int, width: int, short_side: int) -> Tuple[int, int]:
    """(H, W) with the short side at ``short_side`` (never enlarged), aspect ratio kept."""
    scale = short_side / min(height, width)
    if scale >= 1.0:
        return height, width
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resize_annotations(annotations: List[Dict[str, Any]], src_hw: Tuple[int, int],
                       dst_hw: Tuple[int, int], path: str) -> List[Dict[str, Any]]:
    """Resize RLE masks from ``src_hw`` to ``dst_hw``; masks that vanish are dropped."""
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    out: List[Dict[str, Any]] = []
    for start in range(0, len(annotations), _CHUNK):
        chunk = annotations[start:start + _CHUNK]
        masks = decode_masks(chunk, path=path).transpose(1, 2, 0).astype(np.uint8)  # H×W×n
        small = cv2.resize(masks, (dst_hw[1], dst_hw[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        small = small.reshape(dst_hw[0], dst_hw[1], -1).transpose(2, 0, 1).astype(bool)
        for ann, encoded, mask in zip(chunk, encode_masks(small), small):
            if not mask.any():
                continue
            new = dict(ann)
            new.update(segmentation=encoded["segmentation"], area=encoded["area"], bbox=encoded["bbox"])
            for key in _SCALED_POINT_KEYS:
                if key in ann:
                    new[key] = _scale_coords(ann[key], sx, sy)
            out.append(new)
    return out


def _scale_coords(value: Any, sx: float, sy: float) -> Any:
    """Scale [x, y, ...] (or lists of them) by (sx, sy) alternately."""
    if value and isinstance(value[0], list):
        return [_scale_coords(v, sx, sy) for v in value]
    return [float(v) * (sx if i % 2 == 0 else sy) for i, v in enumerate(value)]


def _copy_into(src: str, f) -> None:
    with open(src, "rb") as source:
        shutil.copyfileobj(source, f)


def prepare_one(job: Tuple[str, str, str, int, int]) -> Tuple[str, Optional[str], int]:
    """Resize one image and its mask file. Returns (relative path, error or None, masks kept)."""
    rel, src_root, dst_root, short_side, quality = job
    stem = os.path.splitext(rel)[0]
    src_image, src_masks = os.path.join(src_root, rel), os.path.join(src_root, stem + ".json")
    dst_image = os.path.join(dst_root, "images", stem + ".jpg")
    dst_masks = os.path.join(dst_root, "annotations", stem + ".json")
    try:
        with Image.open(src_image) as im:
            image = im.convert("RGB")
        height, width = image.height, image.width
        record = read_mask_file(src_masks, image_size=(height, width))
        new_hw = resized_size(height, width, short_side)
        if new_hw == (height, width):
            annotations = record["annotations"]
            atomic_write(dst_image, writer=lambda f: _copy_into(src_image, f))
        else:
            annotations = resize_annotations(record["annotations"], (height, width), new_hw, src_masks)
            resized = image.resize((new_hw[1], new_hw[0]), Image.BILINEAR)
            atomic_write(dst_image, writer=lambda f: resized.save(f, format="JPEG", quality=quality))
        info = dict(record["image"], file_name=os.path.basename(dst_image), height=new_hw[0], width=new_hw[1])
        write_mask_file(dst_masks, info, annotations)  # last: its presence marks the image done
        return rel, None, len(annotations)
    except (OSError, MaskFileError, ValueError) as e:
        return rel, f"{type(e).__name__}: {e}", 0


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="extracted SA-1B tars (jpg + json side by side)")
    p.add_argument("--output", default=os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "sa1b"),
                   help="prepared root with images/ and annotations/ (default: $DETECTRON2_DATASETS/sa1b)")
    p.add_argument("--short-side", type=int, default=750, help="target short side (release: 750, half of 1500)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the resized images")
    p.add_argument("--workers", type=int, default=1, help="parallel processes")
    p.add_argument("--tars", default="",
                   help="a text file of tar folder names, one per line (datasets/sa1b.txt: the release's 100): "
                        "only the images under those folders are prepared")
    p.add_argument("--overwrite", action="store_true", help="redo images whose output exists")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s")

    found = list_files(args.input, IMAGE_EXTENSIONS) if os.path.isdir(args.input) else []
    if args.tars:
        found = _in_tars(found, args.tars, args.input)
    if not found:
        p.error(f"expected SA-1B images (sa_*.jpg with sa_*.json beside them) at {args.input}"
                + (f" in the folders listed by {args.tars}" if args.tars else ""))
    stale = len(remove_stale_temp_files(args.output, recursive=True))
    if stale:
        logger.info(f"Removed {stale} temp files left by an interrupted run")
    images = [rel for rel in found if args.overwrite or not os.path.exists(
        os.path.join(args.output, "annotations", os.path.splitext(rel)[0] + ".json"))]
    jobs = [(rel, args.input, args.output, args.short_side, args.quality) for rel in images]
    logger.info(f"{len(jobs)} images to prepare from {args.input} into {args.output}")
    errors: Dict[str, str] = {}
    done = masks = 0
    bar = tqdm(total=len(jobs), unit="img", desc="prepare SA-1B", disable=args.no_progress)
    with Pool(args.workers) if args.workers > 1 else _Serial() as pool:
        for rel, error, n in pool.imap_unordered(prepare_one, jobs, chunksize=4):
            bar.update(1)
            if error:
                errors[rel] = error
                logger.warning(f"Skipped {rel}: {error}")
            else:
                done, masks = done + 1, masks + n
    bar.close()
    summary = {"prepared": done, "failed": len(errors), "errors": errors,
               "masks_per_image": masks / max(done, 1), "short_side": args.short_side}
    logger.info(f"Prepared {done} images ({summary['masks_per_image']:.1f} masks/image), {len(errors)} failed")
    os.makedirs(args.output, exist_ok=True)
    atomic_write(os.path.join(args.output, "prepare_sa1b_summary.json"), json.dumps(summary, indent=2))
    return summary


def _in_tars(found: List[str], list_file: str, root: str) -> List[str]:
    """The images of ``found`` whose first folder is named in ``list_file``; the listed folders that are
    missing under ``root`` are logged."""
    try:
        with open(list_file) as f:
            tars = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    except OSError as e:
        raise SystemExit(f"prepare_sa1b: --tars {list_file}: cannot be read ({e.strerror})") from None
    kept = [rel for rel in found if rel.split("/", 1)[0] in tars]
    present = {rel.split("/", 1)[0] for rel in kept}
    missing = sorted(tars - present)
    if missing:
        logger.warning(f"{len(missing)} of the {len(tars)} tars listed in {list_file} are not extracted under "
                       f"{root}: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
    return kept


class _Serial:
    """Pool stand-in for --workers 1 (keeps tracebacks simple)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap_unordered(fn, items, chunksize=1):
        return map(fn, items)


if __name__ == "__main__":
    main(sys.argv[1:])
