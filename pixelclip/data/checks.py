"""Check the datasets of a config before anything runs, and say everything that is wrong at once.

``DATASETS.TEST`` often lists several benchmarks; without a check, a missing one fails only when
its turn comes, after the others have run. :func:`check_test_datasets` looks at all of them first
and raises one :class:`~pixelclip.errors.DatasetError` listing every problem with the prepare
script of each: names that are not registered (with the nearest registered names), folders
that do not exist, and (``list_files``) images and label files that do not pair up.
"""
import difflib
import logging
import os
from typing import List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..errors import DatasetError, PixelCLIPError

logger = logging.getLogger(__name__)

__all__ = ["check_test_datasets", "check_train_datasets", "unknown_dataset_message"]

_listed = set()  # test datasets whose files were listed and paired in this process


def unknown_dataset_message(name: str) -> str:
    """``"'x' is not a registered dataset (nearest: a, b)"``."""
    near = difflib.get_close_matches(name, DatasetCatalog.list(), n=3, cutoff=0.6)
    return f"'{name}' is not a registered dataset" + (f" (nearest: {', '.join(near)})" if near else "")


def _folder_problems(name: str) -> List[str]:
    meta = MetadataCatalog.get(name)
    hint = meta.get("prepare_hint", None)
    if not hint:  # not a prepared benchmark (e.g. generated on first use): listing will tell
        return []
    problems = []
    for key, kind in (("image_root", "image folder"), ("sem_seg_root", "label folder")):
        folder = meta.get(key, None)
        if folder and not os.path.isdir(folder):
            problems.append(f"{name}: {kind} {folder} does not exist (prepare it with {hint})")
            break  # one line per dataset
    return problems


def check_test_datasets(names: Sequence[str], list_files: bool = True) -> None:
    """Check every test dataset before the first one is evaluated.

    Arguments:
        names: ``DATASETS.TEST``.
        list_files: also load each dataset's dicts (benchmarks pair images and label files then,
            ``pixelclip/data/datasets/_sem_seg.py``); without it only names and folders are checked.
    Raises:
        DatasetError: one message with every problem found, and the prepare script of each dataset.
    """
    problems: List[str] = []
    for name in names:
        if name not in DatasetCatalog.list():
            problems.append(unknown_dataset_message(name))
            continue
        found = _folder_problems(name)
        problems += found
        if found or not list_files or name in _listed:
            continue
        try:
            DatasetCatalog.get(name)
        except PixelCLIPError as e:
            hint = MetadataCatalog.get(name).get("prepare_hint", None)
            what = e.what if e.what.startswith(name) else f"{name}: {e.what}"
            problems.append(what + (f" (prepare it with {hint})" if hint and hint not in what else ""))
            continue
        _listed.add(name)
    if problems:
        raise DatasetError(
            f"{len(problems)} of {len(names)} test datasets cannot be evaluated: " + "; ".join(problems),
            "prepare them (datasets/README.md, datasets/prepare_*.py) or remove them from DATASETS.TEST")


def check_train_datasets(names: Sequence[str]) -> None:
    """Every ``DATASETS.TRAIN`` name is registered and, where its metadata names a ``root`` folder
    (SA-1B), that folder exists; the files themselves are listed when the loader is built."""
    unknown = [unknown_dataset_message(n) for n in names if n not in DatasetCatalog.list()]
    if unknown:
        raise DatasetError("; ".join(unknown) + " (DATASETS.TRAIN)",
                           "use a registered name (datasets/README.md) or register your folder first")
    for name in names:
        root = MetadataCatalog.get(name).get("root", None)
        if root and not os.path.isdir(root):
            raise DatasetError(f"DATASETS.TRAIN {name}: root {root} does not exist",
                               "download and prepare it (datasets/README.md), or set $DETECTRON2_DATASETS to the "
                               "folder that holds it")
