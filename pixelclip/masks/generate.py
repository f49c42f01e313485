"""Resumable, sharded mask generation over an images folder (``tools/generate_masks.py``).

One SA-1B-style JSON per image, mirroring the images folder (``images/a/b.jpg`` ->
``masks/a/b.json``), written atomically (temp file + ``os.replace``): a file with the final name
is always complete, so a killed run is resumed by skipping the images whose file exists, after
removing the temp files it left. ``--shard i --num-shards n`` takes the images whose path hash
(CRC-32 of the relative path) is ``i`` mod ``n``: shards are disjoint, cover every image, and do
not depend on listing order, so processes or machines share one output folder without talking.
"""
import json
import logging
import os
import time
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
from detectron2.data import detection_utils as utils
from pycocotools import mask as mask_util
from tqdm import tqdm

from ..data.mask_io import (
    MaskFileError,
    encode_masks,
    read_mask_file,
    rle_objects,
    write_mask_file,
)
from ..errors import DatasetError
from ..utils.files import IMAGE_EXTENSIONS, MASK_SUFFIX, list_files
from ..utils.io import TEMP_MARKER, atomic_write, remove_stale_temp_files

__all__ = [
    "Masker",
    "BinaryMaskAdapter",
    "shard_of",
    "select_shard",
    "mask_path_for",
    "generate_masks",
]

logger = logging.getLogger(__name__)

# A masker maps an H×W×3 uint8 RGB image to SA-1B annotations (see pixelclip.data.mask_io).
Masker = Callable[[np.ndarray], List[Dict[str, Any]]]


class BinaryMaskAdapter:
    """Turn ``image -> bool masks N×H×W`` (e.g. ``DinoKMeansMasker.mask_image``) into a Masker."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]):
        self.fn = fn

    def __call__(self, image: np.ndarray) -> List[Dict[str, Any]]:
        return encode_masks(self.fn(image))


def shard_of(rel_path: str, num_shards: int) -> int:
    """Shard of an image, from the CRC-32 of its relative path."""
    return zlib.crc32(rel_path.encode("utf-8")) % num_shards


def no_images_error(image_root: str) -> DatasetError:
    """The error for an image folder in which :func:`list_files` finds no image."""
    return DatasetError(f"no images under {image_root} (searched recursively for {', '.join(IMAGE_EXTENSIONS)})",
                        "give the folder that holds the images")


def check_has_images(image_root: str) -> None:
    """Raise :func:`no_images_error` unless ``image_root`` holds an image (stops at the first one found;
    hidden and temporary names are skipped, as :func:`list_files` skips them)."""
    for _, subfolders, files in os.walk(image_root, followlinks=True):  # list_files follows links too
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and TEMP_MARKER not in d]
        if any(not f.startswith(".") and TEMP_MARKER not in f and f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            return
    raise no_images_error(image_root)


def select_shard(rel_paths: Sequence[str], shard: int, num_shards: int) -> List[str]:
    """The paths of shard ``shard`` out of ``num_shards``."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"--shard must be in [0, --num-shards), got shard {shard} of {num_shards}")
    return [p for p in rel_paths if shard_of(p, num_shards) == shard]


def mask_path_for(mask_root: str, rel_image: str) -> str:
    return os.path.join(mask_root, os.path.splitext(rel_image)[0] + MASK_SUFFIX)


def _is_done(path: str, verify: bool) -> bool:
    if not os.path.exists(path):
        return False
    if not verify:
        return True  # atomic writes: an existing file is complete
    try:
        read_mask_file(path, allow_empty=True)
        return True
    except MaskFileError as e:
        logger.warning(f"Regenerating invalid mask file: {e}")
        return False


def _coverage(annotations: Sequence[Mapping[str, Any]], height: int, width: int) -> float:
    """Fraction of the image's pixels inside at least one mask."""
    if not annotations:
        return 0.0
    union = mask_util.merge(rle_objects(annotations), intersect=False)
    return float(mask_util.area(union)) / float(height * width)


def generate_masks(
    masker: Masker,
    image_root: str,
    mask_root: str,
    shard: int = 0,
    num_shards: int = 1,
    verify_existing: bool = False,
    progress: bool = True,
    summary_path: Optional[str] = None,
    extra_summary: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Write a mask file for every image of the shard that has none yet.

    Args:
        masker: image (H×W×3 uint8 RGB) -> SA-1B annotations.
        image_root: images folder (searched recursively).
        mask_root: output folder (created), mirroring ``image_root``.
        shard, num_shards: which part of the images this call handles.
        verify_existing: validate existing files and regenerate invalid ones (otherwise an
            existing file counts as done).
        progress: show a tqdm bar.
        summary_path: where the summary JSON goes; default
            ``<mask_root>/generate_masks_summary.shard<i>of<n>.json``.
        extra_summary: fields added to the summary (method, options).
    Returns:
        the summary: images in the shard, already done, processed now, failed (unreadable images,
        no file written), masks per image, pixel coverage, seconds per image (this run).
    """
    start = time.perf_counter()
    found = list_files(image_root, IMAGE_EXTENSIONS)
    if not found:
        raise no_images_error(image_root)
    images = select_shard(found, shard, num_shards)
    targets = {rel: mask_path_for(mask_root, rel) for rel in images}
    os.makedirs(mask_root, exist_ok=True)
    removed = len(remove_stale_temp_files(mask_root, recursive=True, owned_targets=targets.values()))
    if removed:
        logger.info(f"Removed {removed} temp files left by an interrupted run")
    todo = [rel for rel in images if not _is_done(targets[rel], verify_existing)]
    logger.info(f"Shard {shard}/{num_shards}: {len(images)} images, {len(images) - len(todo)} already done, "
                f"{len(todo)} to process -> {mask_root}")

    num_masks: List[int] = []
    coverage: List[float] = []
    seconds: List[float] = []
    failed: List[str] = []
    for rel in tqdm(todo, desc=f"masks [shard {shard}/{num_shards}]", unit="img", disable=not progress):
        t0 = time.perf_counter()
        path = os.path.join(image_root, rel)
        try:
            image = utils.read_image(path, format="RGB")
        except Exception as e:
            logger.warning(f"Skipping unreadable image {path}: {type(e).__name__}: {e}")
            failed.append(rel)
            continue
        height, width = image.shape[:2]
        annotations = masker(image)
        image_info = {"file_name": rel, "height": height, "width": width, "image_id": os.path.splitext(rel)[0]}
        write_mask_file(targets[rel], image_info, annotations)
        num_masks.append(len(annotations))
        coverage.append(_coverage(annotations, height, width))
        seconds.append(time.perf_counter() - t0)

    def stats(values: List[float]) -> Dict[str, float]:
        if not values:
            return {"mean": 0.0, "min": 0.0, "max": 0.0}
        return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}

    summary: Dict[str, Any] = dict(extra_summary or {})
    summary.update({
        "image_root": image_root,
        "mask_root": mask_root,
        "shard": shard,
        "num_shards": num_shards,
        "images_in_shard": len(images),
        "already_done": len(images) - len(todo),
        "processed": len(num_masks),
        "failed": len(failed),
        "failed_files": failed,
        "images_without_masks": int(sum(n == 0 for n in num_masks)),
        "masks_per_image": stats(num_masks),
        "pixel_coverage": stats(coverage),
        "seconds_per_image": float(np.mean(seconds)) if seconds else 0.0,
        "total_seconds": time.perf_counter() - start,
    })
    if summary_path is None:
        summary_path = os.path.join(mask_root, f"generate_masks_summary.shard{shard}of{num_shards}.json")
    atomic_write(summary_path, json.dumps(summary, indent=2))
    logger.info(
        f"Shard {shard}/{num_shards} done: {summary['processed']} processed, {summary['already_done']} already done, "
        f"{summary['failed']} failed; {summary['masks_per_image']['mean']:.1f} masks/image, "
        f"coverage {summary['pixel_coverage']['mean']:.1%}, {summary['seconds_per_image']:.3f} s/image "
        f"(summary: {summary_path})")
    return summary
