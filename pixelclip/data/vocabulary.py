"""Vocabularies: the class names an open-vocabulary model is asked to segment.

A vocabulary is a list of class names. A name may carry synonyms separated by ", " as in the
benchmarks' conventional lists (``"sofa, couch, lounge"``). :func:`load_vocabulary` turns a user's
spec (``cfg.MODEL.PIXELCLIP.TEST.VOCABULARY``, a demo's ``--vocabulary``) into such a list.

The index of a name is its label id, so a name listed twice would give two ids to one class (the
second never wins a pixel, and the label map means something else than the user thinks).
Duplicates are refused, not removed: removing them would shift the ids of every later class
(:func:`check_vocabulary`, used by :func:`load_vocabulary`, the benchmark registrations and the
trainer's evaluation).
"""
import functools
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..errors import VocabularyError, VocabularyFileError

logger = logging.getLogger(__name__)


class UnknownVocabularyError(VocabularyError, KeyError):
    """A packaged vocabulary name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


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
        raise UnknownVocabularyError(
            f"unknown packaged vocabulary {name!r}", f"use one of {', '.join(PACKAGED_VOCABULARIES)}")
    return list(_read_packaged(name))


def read_class_file(path: str) -> List[str]:
    """Class names from a ``.json`` file (a list of strings) or a text file (one name a line;
    blank lines and lines starting with ``#`` are skipped)."""
    if not os.path.isfile(path):
        raise VocabularyFileError(
            f"vocabulary file not found: {path}",
            "give an existing .txt (one class a line) or .json (a list) file, class names \"a,b,c\", a packaged "
            f"vocabulary ({', '.join(PACKAGED_VOCABULARIES)}) or a registered dataset name")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise VocabularyError(f"cannot read vocabulary file {path}: {e}", "save it as UTF-8 text") from None
    if path.lower().endswith(".json"):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise VocabularyError(f"vocabulary file {path} is not valid JSON: {e}",
                                  'write a JSON list of class names, e.g. ["cat", "sofa, couch"]') from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise VocabularyError(
                f"vocabulary file {path} must hold a JSON list of class-name strings",
                'e.g. ["cat", "sofa, couch"]')
        empty = [i for i, n in enumerate(names) if not n.strip()]
        if empty:  # dropping them would shift the ids of the classes after
            raise VocabularyError(
                f"vocabulary file {path} has an empty class name at position{'s' if len(empty) > 1 else ''} "
                f"{', '.join(map(str, empty[:10]))} (counting from 0; the position is the label id)",
                "remove it or name the class there, so that every id is the class you mean")
    else:
        names = [line for line in text.splitlines() if not line.strip().startswith("#")]
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise VocabularyError(f"vocabulary file {path} lists no class names (empty vocabulary)",
                              "write one class name a line")
    return names


def check_vocabulary(names: Sequence[str], source: str) -> List[str]:
    """The class names, stripped; refuses an empty list, an empty name or a repeated name.

    Arguments:
        names: class names in label order.
        source: where they come from (a spec, a file, a dataset name), for the message.
    Raises:
        VocabularyError: naming the repeated names and their positions (label ids).
    """
    names = [str(n).strip() for n in names]
    if not names or not all(names):
        raise VocabularyError(f"vocabulary {source!r} is empty or has an empty class name",
                              "give at least one non-empty class name")
    counts = Counter(names)
    duplicates = [n for n in dict.fromkeys(names) if counts[n] > 1]
    if duplicates:
        where = "; ".join(
            f"{n!r} at ids {', '.join(str(i) for i, m in enumerate(names) if m == n)}" for n in duplicates[:5])
        raise VocabularyError(
            f"vocabulary {source!r} repeats {len(duplicates)} class name(s): {where}",
            "list each class once (its position is its label id); put synonyms in one entry, "
            "e.g. 'sofa, couch'")
    return names


def _checked(names: Sequence[str], spec: str) -> List[str]:
    return check_vocabulary(names, spec)


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
        raise VocabularyError("empty vocabulary spec", "give class names, a class file or a dataset name")
    spec = spec.strip()
    if spec in DatasetCatalog.list():
        classes = MetadataCatalog.get(spec).get("stuff_classes", None)
        if not classes:
            raise VocabularyError(f"dataset {spec!r} is registered but has no stuff_classes metadata",
                                  "give class names or a class file instead")
        return _checked(classes, spec)
    if spec.lower().endswith((".json", ".txt")) or os.path.isfile(spec):
        return _checked(read_class_file(spec), spec)
    if spec in PACKAGED_VOCABULARIES:
        return _checked(packaged_vocabulary(spec), spec)
    separator = ";" if ";" in spec else ","
    entries = [n.strip() for n in spec.split(separator)]
    while entries and not entries[-1]:  # a trailing separator shifts no id
        entries.pop()
    empty = [i for i, n in enumerate(entries) if not n]
    if empty and len(entries) - len(empty) >= 2:  # dropping them would shift the ids of the classes after
        raise VocabularyError(
            f"vocabulary {spec!r} has an empty class name at position{'s' if len(empty) > 1 else ''} "
            f"{', '.join(map(str, empty))} (counting from 0; the position is the label id)",
            f"remove the extra '{separator}' or name the class there, so that every id is the class you mean")
    names = [n for n in entries if n]
    if len(names) < 2:
        raise VocabularyError(
            f"vocabulary {spec!r} is not a registered dataset, a class file (.json/.txt), a "
            f"packaged vocabulary ({', '.join(PACKAGED_VOCABULARIES)}), nor a list of at least "
            "two class names separated by ',' (or ';')", "give one of these")
    return _checked(names, spec)


def default_vocabulary(cfg) -> Optional[List[str]]:
    """The vocabulary a model config names: ``MODEL.PIXELCLIP.TEST.VOCABULARY`` if set, else the first test
    dataset's ``stuff_classes`` (None if neither)."""
    spec = cfg.MODEL.PIXELCLIP.TEST.VOCABULARY
    if spec:
        return load_vocabulary(spec)
    for name in cfg.DATASETS.TEST:
        classes = MetadataCatalog.get(name).get("stuff_classes", None)
        if classes:
            return list(classes)
    return None
