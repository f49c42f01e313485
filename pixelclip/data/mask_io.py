"""Per-image mask files in SA-1B's schema: read, write, validate, encode and decode.

One JSON file per image (the layout of SA-1B, Kirillov et al. 2023)::

    {"image": {"file_name": str, "height": int, "width": int, "image_id": int|str (optional)},
     "annotations": [{"segmentation": {"size": [H, W], "counts": str},   # COCO RLE
                      "area": int, "bbox": [x, y, w, h],
                      "predicted_iou": float, "stability_score": float,   # optional
                      ...}]}                                              # other keys are kept

Every error found while reading a file is a :class:`MaskFileError` whose message names the
file and the field, e.g. ``masks/a.json: annotations[3].segmentation.size: [480, 640] differs
from the image size [240, 320]``.
"""
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools import mask as mask_util

from ..errors import PixelCLIPError
from ..utils.io import TEMP_MARKER, atomic_write

__all__ = [
    "MaskFileError",
    "encode_masks",
    "decode_masks",
    "write_mask_file",
    "read_mask_file",
    "validate_mask_record",
    "rle_counts_problem",
    "TEMP_MARKER",
]

PathLike = Union[str, os.PathLike]


class MaskFileError(PixelCLIPError, ValueError):
    """A mask file that cannot be used; the message names the file and the offending field."""

    def __init__(self, path: Optional[PathLike], field: str = "", problem: str = ""):
        self.path = None if path is None else os.fspath(path)
        self.field = field
        self.problem = problem
        where = self.path if self.path is not None else "<mask record>"
        what = (f"{where}: {field}: {problem}" if field else f"{where}: {problem}") if problem else where
        super().__init__(what, "regenerate the mask file (tools/generate_masks.py) or remove the image from the set"
                         if problem else "")

    def __reduce__(self):
        return (self.__class__, (self.path, self.field, self.problem))


# ----------------------------------------------------------------------------------------------
# Encoding / decoding
# ----------------------------------------------------------------------------------------------
def encode_masks(
    masks: np.ndarray, scores: Optional[Mapping[str, Sequence[Any]]] = None
) -> List[Dict[str, Any]]:
    """Binary masks -> SA-1B annotations.

    Args:
        masks: bool (or 0/1) array N×H×W.
        scores: optional per-mask lists keyed by field name (e.g. ``predicted_iou``,
            ``stability_score``, ``point_coords``), each of length N; copied into the annotations.
    Returns:
        N dicts with ``id``, ``segmentation`` (COCO RLE, ``counts`` a str), ``area`` (pixels)
        and ``bbox`` ``[x, y, w, h]`` in pixels (``[0, 0, 0, 0]`` for an empty mask).
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode_masks expects N×H×W masks, got shape {masks.shape}")
    n = masks.shape[0]
    scores = dict(scores or {})
    for key, values in scores.items():
        if len(values) != n:
            raise ValueError(f"encode_masks: scores[{key!r}] has {len(values)} values for {n} masks")
    if n == 0:
        return []
    fortran = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))
    rles = mask_util.encode(fortran)
    areas = mask_util.area(rles)
    annotations = []
    for i, rle in enumerate(rles):
        counts = rle["counts"]
        annotation = {
            "id": i,
            "segmentation": {
                "size": [int(rle["size"][0]), int(rle["size"][1])],
                "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
            },
            "area": int(areas[i]),
            "bbox": _mask_bbox(masks[i]),
        }
        for key, values in scores.items():
            annotation[key] = _to_builtin(values[i])
        annotations.append(annotation)
    return annotations


def _mask_bbox(mask: np.ndarray) -> List[int]:
    """Tight ``[x, y, w, h]`` box of a H×W mask, ``[0, 0, 0, 0]`` when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return [0, 0, 0, 0]
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def _to_builtin(value: Any) -> Any:
    """numpy scalars / arrays -> JSON-serialisable Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "tolist"):  # torch tensors
        return value.tolist()
    return value


def rle_objects(annotations: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """pycocotools RLE objects (bytes counts) of the annotations' ``segmentation`` fields."""
    rles = []
    for ann in annotations:
        seg = ann["segmentation"]
        h, w = int(seg["size"][0]), int(seg["size"][1])
        counts = seg["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            rles.append(mask_util.frPyObjects({"size": [h, w], "counts": counts}, h, w))
        else:
            rles.append({"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts})
    return rles


def decode_masks(
    record_or_annotations: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]],
    indices: Optional[Sequence[int]] = None,
    path: Optional[PathLike] = None,
) -> np.ndarray:
    """Decode COCO RLE masks.

    Args:
        record_or_annotations: a record from :func:`read_mask_file` (``{"image", "annotations"}``)
            or a list of annotations.
        indices: decode only these annotations (in this order); all when None.
        path: file named in errors.
    Returns:
        bool array N×H×W. With no annotation, H and W come from the record's ``image``
        (0×0×0 for an empty annotation list without image info).
    Raises:
        MaskFileError: an RLE whose counts do not match its size.
    """
    if isinstance(record_or_annotations, Mapping):
        annotations = record_or_annotations.get("annotations", [])
        image = record_or_annotations.get("image", {})
        empty_hw = (int(image.get("height", 0)), int(image.get("width", 0)))
    else:
        annotations = record_or_annotations
        empty_hw = (0, 0)
    if indices is None:
        indices = range(len(annotations))
    indices = list(indices)
    if not indices:
        if annotations:
            seg = annotations[0]["segmentation"]
            empty_hw = (int(seg["size"][0]), int(seg["size"][1]))
        return np.zeros((0,) + empty_hw, dtype=bool)
    chosen = [annotations[i] for i in indices]
    rles = rle_objects(chosen)
    try:
        decoded = mask_util.decode(rles)  # H×W×N uint8
    except ValueError as e:
        bad = _first_bad_rle(rles)
        field = f"annotations[{indices[bad]}].segmentation.counts" if bad is not None else "annotations"
        raise MaskFileError(path, field, f"invalid COCO RLE ({e})") from None
    return np.ascontiguousarray(decoded.transpose(2, 0, 1)).astype(bool, copy=False)


def _first_bad_rle(rles: Sequence[Mapping[str, Any]]) -> Optional[int]:
    for i, rle in enumerate(rles):
        try:
            mask_util.decode([rle])
        except ValueError:
            return i
    return None


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def write_mask_file(
    path: PathLike, image_info: Mapping[str, Any], annotations: Sequence[Mapping[str, Any]]
) -> None:
    """Validate and write one SA-1B-style mask file atomically (:func:`pixelclip.utils.io.atomic_write`).

    Args:
        path: destination ``.json``.
        image_info: ``{"file_name", "height", "width", "image_id"?}`` of the image.
        annotations: from :func:`encode_masks` (or SA-1B); every RLE must be H×W of the image.
    """
    record = {
        "image": {k: _to_builtin(v) for k, v in image_info.items()},
        "annotations": [{k: _to_builtin(v) for k, v in ann.items()} for ann in annotations],
    }
    validate_mask_record(record, path=path, allow_empty=True)
    atomic_write(path, json.dumps(record, separators=(",", ":")))


# ----------------------------------------------------------------------------------------------
# Reading and validation
# ----------------------------------------------------------------------------------------------
def read_mask_file(
    path: PathLike,
    allow_empty: bool = False,
    image_size: Optional[Tuple[int, int]] = None,
    check_rle: bool = False,
) -> Dict[str, Any]:
    """Read and validate one mask file.

    Args:
        path: the ``.json`` file.
        allow_empty: accept a file whose ``annotations`` list is empty (an image where the mask
            generator found nothing); training data needs at least one mask, so the default is no.
        image_size: (H, W) of the actual image; when given, the file's image size must match.
        check_rle: also decode every RLE to check that its counts fit its size (slower).
    Returns:
        ``{"image": {...}, "annotations": [...]}`` as stored.
    Raises:
        MaskFileError: missing or empty file, malformed JSON, missing/ill-typed field, an RLE
            whose size differs from the image, an empty annotation list (unless allowed).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MaskFileError(path, "", "file not found") from None
    except OSError as e:
        raise MaskFileError(path, "", f"cannot be read ({e.strerror})") from None
    if not raw.strip():
        raise MaskFileError(path, "", "empty file (0 bytes of JSON); regenerate it")
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MaskFileError(path, "", f"malformed JSON ({e}); regenerate the file") from None
    validate_mask_record(record, path=path, allow_empty=allow_empty, image_size=image_size)
    if check_rle:
        decode_masks(record, path=path)
    return record


def _run_lengths(counts: str) -> Union[np.ndarray, str]:
    """Run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), or the reason
    it cannot be parsed. Each run is 5-bit groups in characters 48..111, bit 0x20 continuing it
    and bit 0x10 of its last character the sign; runs from the fourth on are deltas to the run two
    before."""
    try:
        raw = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        return "it holds non-ASCII characters"
    if raw.size == 0:
        return "it is empty"
    if raw.min() < 0 or raw.max() > 63:
        bad = counts[int(np.flatnonzero((raw < 0) | (raw > 63))[0])]
        return f"character {bad!r} is not an RLE digit"
    more = (raw & 0x20) != 0
    if more[-1]:
        return "it ends in the middle of a run (truncated)"
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 8:  # 8 groups = 40 bits: more than any image holds
        return "a run length has too many digits"
    group = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(raw.size) - starts[group]
    x = np.add.reduceat((raw & 0x1F) << (5 * position), starts)
    x -= ((raw[ends] & 0x10) != 0) * (np.int64(1) << (5 * lengths))
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])
    runs[2::2] = np.cumsum(x[2::2])
    return runs


def rle_counts_problem(counts: Union[str, Sequence[int]], height: int, width: int) -> Optional[str]:
    """Why an RLE's ``counts`` does not describe a ``height``×``width`` mask (None when it does):
    an unparsable string, a negative run, or runs that do not add up to height × width.

    pycocotools decodes some malformed strings without complaint and gives others an empty box,
    so a bad mask would otherwise vanish from training without a word."""
    runs = _run_lengths(counts) if isinstance(counts, str) else np.asarray(counts, dtype=np.int64)
    if isinstance(runs, str):
        return runs
    if runs.size and runs.min() < 0:
        return f"run {int(np.flatnonzero(runs < 0)[0])} is negative"
    total = int(runs.sum())
    if total != height * width:
        return f"its runs cover {total} pixels, its size {height}×{width} has {height * width}"
    return None


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def validate_mask_record(
    record: Any,
    path: Optional[PathLike] = None,
    allow_empty: bool = False,
    image_size: Optional[Tuple[int, int]] = None,
) -> None:
    """Check a parsed mask file against the schema; raise :class:`MaskFileError` on the first
    problem (see :func:`read_mask_file` for the arguments)."""
    if not isinstance(record, Mapping):
        raise MaskFileError(
            path, "", f"expected a JSON object with 'image' and 'annotations', got {type(record).__name__}")
    image = record.get("image")
    if not isinstance(image, Mapping):
        raise MaskFileError(path, "image", "missing (expected {file_name, height, width})")
    for key in ("height", "width"):
        if not _is_int(image.get(key)) or image[key] <= 0:
            raise MaskFileError(path, f"image.{key}", f"expected a positive integer, got {image.get(key)!r}")
    if not isinstance(image.get("file_name"), str) or not image["file_name"]:
        raise MaskFileError(path, "image.file_name", f"expected a non-empty string, got {image.get('file_name')!r}")
    hw = [int(image["height"]), int(image["width"])]
    if image_size is not None and list(image_size) != hw:
        raise MaskFileError(
            path, "image", f"size {hw} (H, W) differs from the image file's size {list(image_size)}; "
            "masks and image must be resized together (datasets/prepare_sa1b.py)")

    annotations = record.get("annotations")
    if not isinstance(annotations, list):
        raise MaskFileError(path, "annotations", f"missing or not a list (got {type(annotations).__name__})")
    if not annotations and not allow_empty:
        raise MaskFileError(path, "annotations", "empty mask list (no masks for this image)")
    for i, ann in enumerate(annotations):
        _validate_annotation(ann, f"annotations[{i}]", hw, path)


def _validate_annotation(ann: Any, field: str, hw: List[int], path: Optional[PathLike]) -> None:
    if not isinstance(ann, Mapping):
        raise MaskFileError(path, field, f"expected an object, got {type(ann).__name__}")
    seg = ann.get("segmentation")
    if not isinstance(seg, Mapping):
        kind = "polygons" if isinstance(seg, list) else type(seg).__name__
        raise MaskFileError(path, f"{field}.segmentation", f"expected a COCO RLE {{size, counts}}, got {kind}")
    size = seg.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(s) for s in size)):
        raise MaskFileError(path, f"{field}.segmentation.size", f"expected [H, W] integers, got {size!r}")
    if list(size) != hw:
        raise MaskFileError(path, f"{field}.segmentation.size", f"{list(size)} differs from the image size {hw}")
    counts = seg.get("counts")
    if not (isinstance(counts, str) or (isinstance(counts, list) and all(_is_int(c) for c in counts))):
        raise MaskFileError(path, f"{field}.segmentation.counts",
                            f"expected an RLE string or list of ints, got {type(counts).__name__}")
    problem = rle_counts_problem(counts, hw[0], hw[1])
    if problem:
        raise MaskFileError(path, f"{field}.segmentation.counts", f"malformed COCO RLE: {problem}")
    if not _is_number(ann.get("area")) or ann["area"] < 0:
        raise MaskFileError(path, f"{field}.area", f"expected a non-negative number, got {ann.get('area')!r}")
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(b) for b in bbox)):
        raise MaskFileError(path, f"{field}.bbox", f"expected [x, y, w, h] numbers, got {bbox!r}")
    for key in ("predicted_iou", "stability_score"):
        if key in ann and not _is_number(ann[key]):
            raise MaskFileError(path, f"{field}.{key}", f"expected a number, got {ann[key]!r}")
