"""Apply Detectron2 geometric transforms to many RLE masks without decoding them at full size.

Resize, crop and flips map every output pixel to one source pixel, so a chain of them is two
index arrays (rows, cols). Each mask is decoded, gathered with those indices and dropped,
so the cost is O(number of masks × output pixels) and masks whose box misses the crop are never
decoded. Resizes use PIL's own nearest-neighbour mapping, so masks match
``TransformList.apply_segmentation`` exactly. Other transforms fall back to
``apply_segmentation`` on each full mask.
"""
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import CropTransform, HFlipTransform, NoOpTransform, VFlipTransform
from PIL import Image
from pycocotools import mask as mask_util

from ..mask_io import decode_masks, rle_objects

__all__ = ["index_maps", "transform_rle_masks"]

_DECODE_CHUNK = 32  # masks decoded at once (bounds memory at full resolution)


def _resize_index(n_src: int, n_dst: int) -> np.ndarray:
    """Source index of each of ``n_dst`` pixels under PIL's NEAREST resize of ``n_src`` pixels."""
    line = Image.fromarray(np.arange(n_src, dtype=np.int32)[None, :])
    return np.asarray(line.resize((n_dst, 1), Image.NEAREST))[0].astype(np.int64)


def index_maps(
    transforms: T.TransformList, height: int, width: int
) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(rows, cols): output pixel (i, j) comes from source pixel (rows[i], cols[j]).

    None when a transform is not a resize / crop / flip / photometric no-op.
    """
    rows, cols = np.arange(height), np.arange(width)
    for t in transforms.transforms:
        if isinstance(t, T.ResizeTransform):
            if (t.h, t.w) != (len(rows), len(cols)):
                return None
            rows, cols = rows[_resize_index(t.h, t.new_h)], cols[_resize_index(t.w, t.new_w)]
        elif isinstance(t, CropTransform):
            rows, cols = rows[t.y0:t.y0 + t.h], cols[t.x0:t.x0 + t.w]
        elif isinstance(t, HFlipTransform):
            cols = cols[::-1]
        elif isinstance(t, VFlipTransform):
            rows = rows[::-1]
        elif isinstance(t, NoOpTransform):
            continue
        else:
            probe = np.zeros((2, 2), dtype=np.uint8)
            probe[0, 1] = 1
            try:
                unchanged = np.array_equal(t.apply_segmentation(probe.copy()), probe)
            except Exception:
                unchanged = False
            if not unchanged:
                return None
    return rows, cols


def transform_rle_masks(
    annotations: Sequence[Mapping[str, Any]],
    transforms: T.TransformList,
    image_hw: Tuple[int, int],
    path: Optional[str] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Transform COCO-RLE masks with the transforms applied to their image; empty ones are dropped.

    Args:
        annotations: SA-1B annotations whose RLEs are ``image_hw``.
        transforms: what was applied to the image.
        image_hw: (H, W) of the image before ``transforms``.
        path: mask file named in errors.
    Returns:
        masks: bool K×H'×W' of the K masks that keep at least one pixel;
        kept: int K, their indices in ``annotations``.
    Raises:
        MaskFileError: an RLE that cannot be decoded.
    """
    maps = index_maps(transforms, *image_hw)
    if maps is None:
        return _transform_full(annotations, transforms, image_hw, path)
    rows, cols = maps
    out_hw = (len(rows), len(cols))
    if not annotations or 0 in out_hw:
        return np.zeros((0,) + out_hw, dtype=bool), np.zeros(0, dtype=np.int64)
    rles = rle_objects(annotations)
    try:
        boxes = mask_util.toBbox(rles)  # N×4 [x, y, w, h] from the runs, no decoding
    except ValueError:
        decode_masks(annotations, path=path)  # raises MaskFileError naming the bad annotation
        raise
    x, y, w, h = (boxes[:, k] for k in range(4))
    hit = (w > 0) & (h > 0) & (x <= cols.max()) & (x + w - 1 >= cols.min()) \
        & (y <= rows.max()) & (y + h - 1 >= rows.min())
    candidates = np.flatnonzero(hit)  # masks whose box misses the crop are never decoded
    pieces, kept = [], []
    for start in range(0, len(candidates), _DECODE_CHUNK):
        chunk = candidates[start:start + _DECODE_CHUNK]
        try:
            full = mask_util.decode([rles[i] for i in chunk])  # H×W×n uint8 (column-major)
        except ValueError:
            decode_masks(annotations, indices=chunk.tolist(), path=path)  # raises, naming the field
            raise
        # full.T is n×W×H C-contiguous: two gathers do resize, crop and flip, reading each mask in order
        small = full.T.take(cols, axis=1).take(rows, axis=2)  # n×w'×h'
        nonempty = small.any(axis=(1, 2))
        pieces.append(small[nonempty].transpose(0, 2, 1).astype(bool))
        kept.append(chunk[nonempty])
    if not pieces:
        return np.zeros((0,) + out_hw, dtype=bool), np.zeros(0, dtype=np.int64)
    return np.ascontiguousarray(np.concatenate(pieces)), np.concatenate(kept)


def _transform_full(
    annotations: Sequence[Mapping[str, Any]],
    transforms: T.TransformList,
    image_hw: Tuple[int, int],
    path: Optional[str],
) -> Tuple[np.ndarray, np.ndarray]:
    """Fallback: decode each mask at full size and use ``apply_segmentation``."""
    out, kept = [], []
    for i in range(len(annotations)):
        mask = decode_masks(annotations, indices=[i], path=path)[0]
        moved = transforms.apply_segmentation(mask.astype(np.uint8)).astype(bool)
        if moved.any():
            out.append(moved)
            kept.append(i)
    if not out:
        out_hw = transforms.apply_segmentation(np.zeros(image_hw, np.uint8)).shape
        return np.zeros((0,) + tuple(out_hw), dtype=bool), np.zeros(0, dtype=np.int64)
    return np.stack(out), np.asarray(kept, dtype=np.int64)
