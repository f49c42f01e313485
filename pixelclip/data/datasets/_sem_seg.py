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

from ...errors import DatasetError
from ...utils.io import TEMP_MARKER
from ..registry import register_dataset
from ..vocabulary import check_vocabulary

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
        raise DatasetError(f"image file {path} is corrupt or not an image ({e})",
                           "replace it (re-extract the download) or remove it with its label file") from None
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return height, width


def _walk(root: str, ending: str) -> Dict[str, str]:
    """``{relative stem: path}`` of the files under ``root`` (recursively) whose name ends with
    ``ending``; hidden files (temporary files of an interrupted preparation) are skipped."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        sub = os.path.relpath(dirpath, root)
        for filename in sorted(filenames):
            if filename.startswith(".") or TEMP_MARKER in filename or not filename.endswith(ending):
                continue
            stem = os.path.normpath(os.path.join(sub, filename[: -len(ending)]))
            found[stem] = os.path.join(dirpath, filename)
    return found


def _read_split(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _examples(items: Sequence[str], few: int = 3) -> str:
    return ", ".join(items[:few]) + (", ..." if len(items) > few else "")


def load_sem_seg_pairs(
    image_root: str,
    sem_seg_root: str,
    *,
    gt_ext: str,
    image_ext: str,
    gt_suffix: str = "",
    image_suffix: str = "",
    prepare_hint: str = "",
    split_files: Sequence[str] = (),
    dataset_name: str = "",
) -> List[Dict]:
    """Dataset dicts of a benchmark, after checking that images and label files pair up both ways.

    A label file ``<sem_seg_root>/<sub>/<stem><gt_suffix>.<gt_ext>`` pairs with the image
    ``<image_root>/<sub>/<stem><image_suffix>.<image_ext>``. The images of the benchmark are every
    image under ``image_root``, or, when ``split_files`` are given (for image folders shared with a
    training split, as VOC's ``JPEGImages``), the ids listed in the first of them that exists.
    Every image needs its label file and every label file its image; otherwise nothing is loaded
    (mIoU over fewer images than the benchmark has would be a silently wrong number).

    Returns:
        dicts with ``file_name``, ``sem_seg_file_name``, ``height``, ``width``, sorted by label path.
    Raises:
        DatasetError: a missing folder or split list; images without labels or labels without
            images (counts and the first few of each); a corrupt image header.
    """
    name = f"{dataset_name}: " if dataset_name else ""
    prepare = (f"prepare it with {prepare_hint} (see datasets/README.md)" if prepare_hint
               else "see datasets/README.md")
    if not os.path.isdir(sem_seg_root):
        raise DatasetError(f"{name}label folder {sem_seg_root} does not exist", prepare)
    if not os.path.isdir(image_root):
        raise DatasetError(f"{name}image folder {image_root} does not exist", prepare)
    ending = f"{gt_suffix}.{gt_ext}"
    image_ending = f"{image_suffix}.{image_ext}"
    labels = _walk(sem_seg_root, ending)
    if not labels:
        raise DatasetError(f"{name}no '*{ending}' label files under {sem_seg_root}", prepare)
    split = None
    if split_files:
        split = next((f for f in split_files if os.path.isfile(f)), None)
        if split is None:
            raise DatasetError(f"{name}no list of the split's images ({' or '.join(split_files)})",
                               f"write one image id a line to {split_files[0]}, or {prepare}")
        images = {os.path.normpath(i): os.path.join(image_root, f"{i}{image_ending}") for i in _read_split(split)}
        absent = sorted(p for p in images.values() if not os.path.isfile(p))
    else:
        images = _walk(image_root, image_ending)
        absent = []
    no_image = sorted(labels[s] for s in labels.keys() - images.keys())
    no_label = sorted(images[s] for s in images.keys() - labels.keys())
    problems = []
    if no_label:
        listed = f" listed in {split}" if split else f" under {image_root}"
        problems.append(f"{len(no_label)} of {len(images)} images{listed} have no label file under "
                        f"{sem_seg_root} (e.g. {_examples(no_label)})")
    if no_image:
        where = f"not in the split list {split}" if split else f"without an image under {image_root}"
        problems.append(f"{len(no_image)} of {len(labels)} label files are {where} (e.g. {_examples(no_image)})")
    if absent:
        problems.append(f"{len(absent)} images of the split list {split} do not exist (e.g. {_examples(absent)})")
    if problems:
        raise DatasetError(
            f"{name}images and labels do not pair up: " + "; ".join(problems),
            f"every image needs its label file: re-run {prepare_hint or 'the preparation'} "
            "(datasets/README.md), or remove the stray files")
    records = []
    for stem in sorted(labels, key=lambda s: labels[s]):
        height, width = _image_size(images[stem])
        records.append({"file_name": os.path.normpath(images[stem]), "sem_seg_file_name": labels[stem],
                        "height": height, "width": width})
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
    split_files: Sequence[str] = (),
    **extra_metadata,
) -> List[str]:
    """Register a semantic-segmentation benchmark (lazily) as ``pixelclip_<name>`` and, when free,
    ``name`` (see :func:`pixelclip.data.registry.register_dataset`); returns the names registered.

    Metadata: ``stuff_classes`` (checked: no repeated name), ``ignore_label``,
    ``evaluator_type="sem_seg"``, ``image_root``, ``sem_seg_root``, ``prepare_hint``, plus
    ``extra_metadata``. ``split_files``: see :func:`load_sem_seg_pairs`.
    """
    stuff_classes = check_vocabulary(stuff_classes, f"stuff_classes of {name}")
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
            split_files=tuple(split_files),
            dataset_name=name,
        ),
        alias=alias,
        stuff_classes=list(stuff_classes),
        ignore_label=ignore_label,
        evaluator_type="sem_seg",
        image_root=image_root,
        sem_seg_root=sem_seg_root,
        prepare_hint=prepare_hint,
        **extra_metadata,
    )
