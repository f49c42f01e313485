"""Vocabularies: the class names an open-vocabulary model is asked to segment.

A vocabulary is a list of class names. A name may carry synonyms separated by ", " as in the
benchmarks' conventional lists (``"sofa, couch, lounge"``). :func:`load_vocabulary` turns a user's
spec (``cfg.MODEL.PIXELCLIP.TEST.VOCABULARY``, a demo's ``--vocabulary``) into such a list.
"""
import functools
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

logger = logging.getLogger(__name__)

VOCABULARY_DIR = Path(__file__).resolve().parent / "datasets" / "vocabularies"

# Class-name lists shipped with the package (pixelclip/data/datasets/vocabularies/<name>.json), in
# the contiguous label order of the prepared benchmark label files.
PACKAGED_VOCABULARIES = (
    "ade150",  # ADE20K-150 (ADEChallengeData2016), CAT-Seg / PixelCLIP names
    "ade847",  # ADE20K-847 (ADE20K_2021_17_01), WordNet-style names with synonyms
    "pc59",  # Pascal Context-59
    "pc60",  # Pascal Context-59 + "background" (last)
    "pc459",  # Pascal Context-459
    "coco_stuff171",  # COCO-Stuff-171
    "voc20",  # Pascal VOC 2012, 20 object classes
    "voc21",  # Pascal VOC 2012, 20 object classes + "background" (last)
    "cityscapes19",  # Cityscapes 19 train ids
)


@functools.lru_cache(maxsize=None)
def _read_packaged(name: str) -> tuple:
    path = VOCABULARY_DIR / f"{name}.json"
    with open(path, encoding="utf-8") as f:
        names = json.load(f)
    return tuple(names)


def packaged_vocabulary(name: str) -> List[str]:
    """The packaged class-name list ``name`` (one of :data:`PACKAGED_VOCABULARIES`)."""
    if name not in PACKAGED_VOCABULARIES:
        raise KeyError(
            f"unknown packaged vocabulary {name!r}; available: {', '.join(PACKAGED_VOCABULARIES)}"
        )
    return list(_read_packaged(name))


def read_class_file(path: str) -> List[str]:
    """Class names from a ``.json`` file (a list of strings) or a text file (one name a line;
    blank lines and lines starting with ``#`` are skipped)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read vocabulary file {path}: {e}") from None
    if path.lower().endswith(".json"):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"vocabulary file {path} is not valid JSON: {e}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"vocabulary file {path} must hold a JSON list of class-name strings, "
                f'e.g. ["cat", "sofa, couch"]'
            )
    else:
        names = [line for line in text.splitlines() if not line.strip().startswith("#")]
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError(f"vocabulary file {path} lists no class names (empty vocabulary)")
    return names


def _checked(names: Sequence[str], spec: str) -> List[str]:
    names = [str(n).strip() for n in names]
    if not names or not all(names):
        raise ValueError(f"vocabulary {spec!r} is empty or has an empty class name")
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        logger.warning(
            "vocabulary %r repeats class names %s: the repeats compete for the same pixels",
            spec,
            duplicates,
        )
    return names


def load_vocabulary(spec: str) -> List[str]:
    """Resolve a vocabulary spec into a list of class names.

    Args:
        spec: one of (tried in this order)
            * a registered dataset name (``"ade20k_150_test_sem_seg"``): its ``stuff_classes``;
            * a path to a ``.json`` (list of names) or ``.txt`` (one name a line) class file;
            * a packaged vocabulary name (``"ade847"``, see :data:`PACKAGED_VOCABULARIES`);
            * an inline list ``"cat,dog,sofa"``. When the spec contains ``;``, classes are
              separated by ``;`` instead, so that synonyms can be given:
              ``"sofa, couch; cat; dog"``.

    Returns:
        the class names, in order (the index of a name is its label id).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty vocabulary spec: give class names, a class file or a dataset name")
    spec = spec.strip()
    if spec in DatasetCatalog.list():
        classes = MetadataCatalog.get(spec).get("stuff_classes", None)
        if not classes:
            raise ValueError(f"dataset {spec!r} is registered but has no stuff_classes metadata")
        return _checked(classes, spec)
    if spec.lower().endswith((".json", ".txt")) or os.path.isfile(spec):
        return _checked(read_class_file(spec), spec)
    if spec in PACKAGED_VOCABULARIES:
        return _checked(packaged_vocabulary(spec), spec)
    separator = ";" if ";" in spec else ","
    names = [n.strip() for n in spec.split(separator) if n.strip()]
    if len(names) < 2:
        raise ValueError(
            f"vocabulary {spec!r} is not a registered dataset, a class file (.json/.txt), a "
            f"packaged vocabulary ({', '.join(PACKAGED_VOCABULARIES)}), nor a list of at least "
            "two class names separated by ',' (or ';')"
        )
    return _checked(names, spec)
