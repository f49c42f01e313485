"""Shared helpers of the benchmark preparation scripts ``datasets/prepare_*.py``.

Every script converts official label files into the single-channel class-id maps that
``pixelclip/data/datasets/*.py`` register: resumable (an output that exists is skipped; outputs are
written to a hidden temporary file and renamed, so an existing output is complete), with a progress
bar, optional worker processes, and a clear message (exit status 2) when the input layout is wrong.
"""
import argparse
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm


class LayoutError(Exception):
    """The input folder does not look like the official download."""


def make_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser showing ``doc`` with ``--root``, ``--overwrite`` and ``--workers``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    return parser


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default=None,
        help="datasets root (default: $DETECTRON2_DATASETS, else ./datasets)",
    )
    parser.add_argument("--overwrite", action="store_true", help="rewrite outputs that exist")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: none)")


def dataset_root(arg: Optional[str]) -> Path:
    return Path(arg or os.getenv("DETECTRON2_DATASETS", "datasets")).expanduser()


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise LayoutError(f"expected {what} at {path} (folder not found). See datasets/README.md.")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise LayoutError(f"expected {what} at {path} (file not found). See datasets/README.md.")
    return path


def vocabulary_dir() -> Path:
    """pixelclip/data/datasets/vocabularies, from this checkout or the installed package (found
    without importing pixelclip, which would load torch)."""
    local = Path(__file__).resolve().parents[1] / "pixelclip" / "data" / "datasets" / "vocabularies"
    if local.is_dir():
        return local
    spec = importlib.util.find_spec("pixelclip")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]) / "data" / "datasets" / "vocabularies"
        if installed.is_dir():
            return installed
    raise LayoutError("cannot find pixelclip/data/datasets/vocabularies: install pixelclip first")


def read_json_list(name: str) -> list:
    with open(vocabulary_dir() / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)


def read_label(path: Path) -> np.ndarray:
    """A single-channel label image (8-bit, palette indices, 16-bit) as an integer array."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I;16", "I;16L", "I;16B", "I"):
                raise LayoutError(
                    f"{path}: image mode {img.mode!r}, expected a single-channel label image "
                    "(is this the official annotation file?)"
                )
            return np.array(img)
    except FileNotFoundError:
        raise LayoutError(f"missing input file {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise LayoutError(f"{path} is corrupt or not an image ({e})") from None


def read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except FileNotFoundError:
        raise LayoutError(f"missing input file {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise LayoutError(f"{path} is corrupt or not an image ({e})") from None


def remap(labels: np.ndarray, mapping: Dict[int, int], default: int, dtype) -> np.ndarray:
    """``mapping[v]`` for every pixel value ``v`` (``default`` for values not in ``mapping``)."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"negative label values ({labels.min()})")
    size = max(int(labels.max(initial=0)), max(mapping, default=0)) + 1
    table = np.full(size, default, dtype=np.int64)
    for src, dst in mapping.items():
        table[src] = dst
    return table[labels].astype(dtype)


# The preparation scripts stay light (numpy, PIL): importing pixelclip would load torch and Detectron2,
# so this keeps its own two atomic writers instead of pixelclip.utils.io.atomic_write.
def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_image_atomic(image: Image.Image, path: Path, format: str, **kwargs) -> None:
    """``image.save`` to a hidden temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        image.save(tmp, format=format, **kwargs)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_text_atomic(text: str, path: Path) -> None:
    """Write ``text`` to a hidden temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_label_atomic(labels: np.ndarray, path: Path) -> None:
    """Save a class-id map: ``.png`` as 8-bit (uint8) or 16-bit (uint16) PNG, ``.tif`` as a
    deflate-compressed 16-bit TIFF."""
    if path.suffix == ".tif":
        save_image_atomic(
            Image.fromarray(labels.astype(np.uint16)), path, "TIFF", compression="tiff_deflate"
        )
    else:
        save_image_atomic(Image.fromarray(labels), path, "PNG")


@dataclass
class Task:
    """One unit of work: ``outputs`` are written by ``convert(task)``; ``inputs`` describe it."""

    outputs: List[Path]
    inputs: Dict = field(default_factory=dict)


def _run_one(args):
    convert, task = args
    convert(task)


def run_tasks(
    tasks: Sequence[Task],
    convert: Callable[[Task], None],
    *,
    overwrite: bool,
    workers: int,
    desc: str,
) -> Dict[str, int]:
    """Run ``convert`` on every task whose outputs are not all there yet (all, with ``overwrite``).

    Returns:
        {"written": n, "skipped": m}.
    """
    todo = [t for t in tasks if overwrite or not all(p.exists() for p in t.outputs)]
    skipped = len(tasks) - len(todo)
    if skipped:
        print(f"[{desc}] {skipped} of {len(tasks)} already prepared: skipped", file=sys.stderr)
    if workers > 0 and len(todo) > 1:
        with Pool(workers) as pool:
            jobs = pool.imap_unordered(_run_one, [(convert, t) for t in todo], chunksize=4)
            for _ in tqdm(jobs, total=len(todo), desc=desc):
                pass
    else:
        for task in tqdm(todo, desc=desc):
            convert(task)
    print(f"[{desc}] wrote {len(todo)}, skipped {skipped}", file=sys.stderr)
    return {"written": len(todo), "skipped": skipped}


def main_guard(main: Callable[[Optional[Sequence[str]]], None], argv=None) -> None:
    """Run ``main``; a :class:`LayoutError` ends the program with its message and status 2."""
    try:
        main(argv)
    except LayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
