"""Shared pieces of the semantic-segmentation benchmark registrations (ade20k.py, pascal_context.py,
coco_stuff.py, pascal_voc.py, cityscapes.py).

A benchmark is an image folder and a folder of prepared label files (one single-channel class-id
map per image, 8-bit PNG or, for more than 255 classes, 16-bit TIFF); ``datasets/prepare_*.py``
makes the label files from the official downloads. Registration is lazy: folders are listed only
when ``DatasetCatalog.get(name)`` is called.
"""
import functools
import logging
import os
from typing import Dict, List, Sequence

from PIL import Image, UnidentifiedImageError

from ..registry import register_dataset

logger = logging.getLogger(__name__)

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap height and width


def datasets_root() -> str:
    """``$DETECTRON2_DATASETS`` (default ``datasets``), user-expanded."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def _image_size(path: str) -> tuple:
    """(height, width) of an image as D2's ``read_image`` returns it (EXIF orientation applied),
    from the file header only."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"image file {path} is corrupt or not an image ({e})") from None
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return height, width


def load_sem_seg_pairs(
    image_root: str,
    sem_seg_root: str,
    *,
    gt_ext: str,
    image_ext: str,
    gt_suffix: str = "",
    image_suffix: str = "",
    prepare_hint: str = "",
) -> List[Dict]:
    """Dataset dicts for every label file under ``sem_seg_root`` (recursively).

    A label file ``<sem_seg_root>/<sub>/<stem><gt_suffix>.<gt_ext>`` pairs with the image
    ``<image_root>/<sub>/<stem><image_suffix>.<image_ext>``. Hidden files (temporary files of an
    interrupted preparation) are ignored.

    Returns:
        dicts with ``file_name``, ``sem_seg_file_name``, ``height``, ``width``, sorted by label path.
    """
    hint = f" Prepare it with {prepare_hint} (see datasets/README.md)." if prepare_hint else ""
    if not os.path.isdir(sem_seg_root):
        raise FileNotFoundError(f"label folder {sem_seg_root} does not exist.{hint}")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image folder {image_root} does not exist.{hint}")
    ending = f"{gt_suffix}.{gt_ext}"
    records, missing = [], []
    for dirpath, dirnames, filenames in os.walk(sem_seg_root):
        dirnames.sort()
        sub = os.path.relpath(dirpath, sem_seg_root)
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.endswith(ending):
                continue
            stem = filename[: -len(ending)]
            image_file = os.path.normpath(
                os.path.join(image_root, sub, f"{stem}{image_suffix}.{image_ext}")
            )
            label_file = os.path.join(dirpath, filename)
            if not os.path.isfile(image_file):
                missing.append((label_file, image_file))
                continue
            height, width = _image_size(image_file)
            records.append(
                {
                    "file_name": image_file,
                    "sem_seg_file_name": label_file,
                    "height": height,
                    "width": width,
                }
            )
    if missing:
        label_file, image_file = missing[0]
        raise FileNotFoundError(
            f"{len(missing)} label file(s) under {sem_seg_root} have no image, e.g. {label_file} "
            f"expects {image_file}"
        )
    if not records:
        raise FileNotFoundError(f"no '*{ending}' label files under {sem_seg_root}.{hint}")
    logger.info("Loaded %d images with labels from %s", len(records), sem_seg_root)
    return records


def register_sem_seg(
    name: str,
    *,
    image_root: str,
    sem_seg_root: str,
    stuff_classes: Sequence[str],
    ignore_label: int,
    gt_ext: str,
    image_ext: str,
    gt_suffix: str = "",
    image_suffix: str = "",
    prepare_hint: str = "",
    alias: bool = True,
    **extra_metadata,
) -> List[str]:
    """Register a semantic-segmentation benchmark (lazily) as ``pixelclip_<name>`` and, when free,
    ``name`` (see :func:`pixelclip.data.registry.register_dataset`); returns the names registered.

    Metadata: ``stuff_classes``, ``ignore_label``, ``evaluator_type="sem_seg"``, ``image_root``,
    ``sem_seg_root``, plus ``extra_metadata``.
    """
    return register_dataset(
        name,
        functools.partial(
            load_sem_seg_pairs,
            image_root,
            sem_seg_root,
            gt_ext=gt_ext,
            image_ext=image_ext,
            gt_suffix=gt_suffix,
            image_suffix=image_suffix,
            prepare_hint=prepare_hint,
        ),
        alias=alias,
        stuff_classes=list(stuff_classes),
        ignore_label=ignore_label,
        evaluator_type="sem_seg",
        image_root=image_root,
        sem_seg_root=sem_seg_root,
        **extra_metadata,
    )
