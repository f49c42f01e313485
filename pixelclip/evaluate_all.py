"""Every dense-CLIP method on every benchmark under one protocol: a method × benchmark mIoU table.

A *method* is a pair (weights, ``MODEL.PIXELCLIP.DENSE_MODE``):

- weights ``clip``: the pre-trained CLIP of ``MODEL.PIXELCLIP.CLIP_PRETRAINED``, no checkpoint
  (``MODEL.WEIGHTS ""``); any other weights name is a checkpoint given as ``NAME=PATH`` (a bare path
  is named ``pixelclip``): a PixelCLIP training output, an imported release checkpoint, ...
- names: ``clip`` (= ``clip+value``, the "CLIP" row of PixelCLIP's table: the release's value path on
  plain CLIP), ``vanilla``, ``maskclip``, ``sclip``, ``clearclip``, ``naclip`` (= ``clip+<mode>``),
  ``pixelclip`` (= ``pixelclip+value``), a weights name alone (``NAME+value``), or any ``WEIGHTS+MODE``
  such as ``pixelclip+sclip`` (a fine-tuned encoder read out through another last block).

Every cell (method, benchmark) runs exactly what ``tools/train_net.py --eval-only MODEL.WEIGHTS W
MODEL.PIXELCLIP.DENSE_MODE M DATASETS.TEST (D,)`` runs (``Trainer.test``: the dataset's vocabulary,
PixelCLIP's ``SemSegEvaluator``), with the rest of the config shared by all cells. Each finished
cell is written atomically to ``cells/<method>/<benchmark>.json`` with a fingerprint of its config and
checkpoint; a later run reuses it while both are unchanged, so an interrupted run resumes at the
first unfinished cell. The table (``table.json``, ``table.md``: method rows, benchmark columns, the
mean over benchmarks) is rewritten after every cell.
"""
import hashlib
import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from .checkpoint import build_checkpointer
from .clip.dense_modes import DENSE_MODES, check_dense_mode
from .utils.io import atomic_write

logger = logging.getLogger(__name__)

# short benchmark name -> registered dataset (any other registered dataset name is accepted as it is)
BENCHMARKS = OrderedDict([
    ("coco_stuff_171", "coco_2017_test_stuff_all_sem_seg"),
    ("ade20k_150", "ade20k_150_test_sem_seg"),
    ("ade20k_847", "ade20k_full_sem_seg_freq_val_all"),
    ("context_59", "context_59_test_sem_seg"),
    ("context_60", "context_60_test_sem_seg"),
    ("context_459", "context_459_test_sem_seg"),
    ("cityscapes_19", "cityscapes_19_val_sem_seg"),
    ("voc_20", "voc_2012_test_sem_seg"),
    ("voc_21", "voc_2012_test_background_sem_seg"),
])
DEFAULT_BENCHMARKS = ("coco_stuff_171", "ade20k_150", "context_59", "cityscapes_19", "voc_20")  # PixelCLIP's table

CLIP_WEIGHTS = "clip"  # the weights name of the pre-trained CLIP (no checkpoint)
DEFAULT_CHECKPOINT_NAME = "pixelclip"  # the name of a checkpoint given without NAME=
METHOD_ALIASES = OrderedDict([
    ("clip", (CLIP_WEIGHTS, "value")),
    ("vanilla", (CLIP_WEIGHTS, "vanilla")),
    ("maskclip", (CLIP_WEIGHTS, "maskclip")),
    ("sclip", (CLIP_WEIGHTS, "sclip")),
    ("clearclip", (CLIP_WEIGHTS, "clearclip")),
    ("naclip", (CLIP_WEIGHTS, "naclip")),
    ("pixelclip", (DEFAULT_CHECKPOINT_NAME, "value")),
])
DEFAULT_METHODS = ("clip", "maskclip", "sclip", "clearclip", "naclip", "pixelclip")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Method:
    """One row of the table: ``name`` evaluates ``checkpoint`` ("" = pre-trained CLIP) with ``dense_mode``."""

    name: str
    weights: str
    checkpoint: str
    dense_mode: str


def parse_weights(specs: Sequence[str]) -> Dict[str, str]:
    """``["PATH" | "NAME=PATH", ...]`` -> {name: path}; a bare path is named ``pixelclip``. Files must exist."""
    weights: Dict[str, str] = OrderedDict()
    for spec in specs:
        name, path = spec.split("=", 1) if "=" in spec else (DEFAULT_CHECKPOINT_NAME, spec)
        if not _NAME.match(name) or name == CLIP_WEIGHTS or name in DENSE_MODES or name in weights:
            raise ValueError(f"--weights {spec!r}: the name must be unique, made of letters, digits, '_.-', and not "
                             f"'{CLIP_WEIGHTS}' or a DENSE_MODE ({', '.join(DENSE_MODES)})")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--weights {spec!r}: checkpoint file {path} does not exist")
        weights[name] = path
    return weights


def parse_methods(names: Sequence[str], weights: Mapping[str, str]) -> List[Method]:
    """Method names (see the module docstring) -> :class:`Method` rows, in order, without repeats."""
    methods: List[Method] = []
    for name in names:
        if "+" in name:
            weights_name, mode = name.split("+", 1)
        elif name in weights:
            weights_name, mode = name, "value"
        elif name in METHOD_ALIASES:
            weights_name, mode = METHOD_ALIASES[name]
        else:
            raise ValueError(f"unknown method {name!r}: one of {', '.join(METHOD_ALIASES)}, a --weights name, or "
                             f"WEIGHTS+MODE with WEIGHTS in {[CLIP_WEIGHTS, *weights]} and MODE in {list(DENSE_MODES)}")
        try:
            check_dense_mode(mode)
        except ValueError as e:
            raise ValueError(f"method {name!r}: {e}") from None
        if weights_name != CLIP_WEIGHTS and weights_name not in weights:
            hint = " (or --weights PATH)" if weights_name == DEFAULT_CHECKPOINT_NAME else ""
            raise ValueError(f"method {name!r} needs the checkpoint '{weights_name}': pass --weights "
                             f"{weights_name}=PATH{hint}")
        if any(m.name == name for m in methods):
            continue
        methods.append(Method(name, weights_name, weights.get(weights_name, ""), mode))
    return methods


def parse_benchmarks(names: Sequence[str]) -> List[Tuple[str, str]]:
    """Short or registered names -> [(column name, registered dataset)], checked against DatasetCatalog."""
    out = []
    registered = set(DatasetCatalog.list())
    for name in names:
        dataset = BENCHMARKS.get(name, name)
        if dataset not in registered:
            raise ValueError(f"unknown benchmark {name!r}: one of {', '.join(BENCHMARKS)} or a registered dataset name")
        if all(column != name for column, _ in out):
            out.append((name, dataset))
    return out


# ----------------------------------------------------------------------------------------------
# one cell
# ----------------------------------------------------------------------------------------------
def cell_config(cfg, method: Method, dataset: str, output_dir: str):
    """The config of one cell: ``cfg`` with the method's weights and DENSE_MODE and one test dataset."""
    cell = cfg.clone()
    cell.defrost()
    cell.MODEL.WEIGHTS = method.checkpoint
    cell.MODEL.PIXELCLIP.DENSE_MODE = method.dense_mode
    cell.DATASETS.TEST = (dataset,)
    cell.OUTPUT_DIR = output_dir
    cell.freeze()
    return cell


def cell_fingerprint(cell_cfg) -> str:
    """sha256 of the cell's config (OUTPUT_DIR aside) and of its checkpoint's path, size and mtime."""
    cfg = cell_cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = ""
    digest = hashlib.sha256(cfg.dump().encode("utf-8"))
    if cfg.MODEL.WEIGHTS:
        stat = os.stat(cfg.MODEL.WEIGHTS)
        digest.update(f"{os.path.abspath(cfg.MODEL.WEIGHTS)}:{stat.st_size}:{stat.st_mtime_ns}".encode("utf-8"))
    return digest.hexdigest()


def build_model_for(cell_cfg):
    """The model of a cell's config, loaded as ``train_net.py --eval-only`` loads it (same seeding)."""
    from .trainer import Trainer

    seed_all_rng(None if cell_cfg.SEED < 0 else cell_cfg.SEED + comm.get_rank())
    model = Trainer.build_model(cell_cfg)
    build_checkpointer(cell_cfg, model, cell_cfg.OUTPUT_DIR).resume_or_load(cell_cfg.MODEL.WEIGHTS, resume=False)
    return model


def evaluate_cell(cell_cfg, model=None) -> Dict[str, float]:
    """``Trainer.test`` of a one-dataset config (built with :func:`cell_config`): D2's ``sem_seg``
    metrics (mIoU, fwIoU, mACC, pACC, per-class IoU / ACC, in %; None where undefined) on the main
    process, {} elsewhere.
    The model is built and loaded from the config when not given."""
    from .trainer import Trainer

    if len(cell_cfg.DATASETS.TEST) != 1:
        raise ValueError(f"evaluate_cell needs one test dataset, got {tuple(cell_cfg.DATASETS.TEST)}")
    if model is None:
        model = build_model_for(cell_cfg)
    results = Trainer.test(cell_cfg, model)
    if not comm.is_main_process() or not results:
        return {}
    # plain floats; NaN (classes absent from both prediction and ground truth) -> None, so the JSON is strict
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in results.get("sem_seg", {}).items()}


def evaluate_dense_mode(cfg, dense_mode: str, weights: str = "", output_dir: Optional[str] = None) -> Dict[str, float]:
    """mIoU of every ``cfg.DATASETS.TEST`` dataset for ``cfg`` read out with ``dense_mode``
    (``weights``: a checkpoint, "" = the config's pre-trained CLIP): {dataset: mIoU}. For scripts such
    as the synthetic demo; one model is built and evaluated dataset by dataset."""
    method = Method(dense_mode, "checkpoint" if weights else CLIP_WEIGHTS, weights, check_dense_mode(dense_mode))
    output_dir = output_dir or os.path.join(cfg.OUTPUT_DIR, f"dense_mode_{dense_mode}")
    model, out = None, OrderedDict()
    for dataset in cfg.DATASETS.TEST:
        cell = cell_config(cfg, method, dataset, os.path.join(output_dir, dataset))
        model = model or build_model_for(cell)
        out[dataset] = evaluate_cell(cell, model).get("mIoU")
    return out


def evaluate_methods(cfg, methods: Sequence[str], output_dir: str, weights: Optional[Mapping[str, str]] = None,
                     benchmarks: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, Optional[float]]]:
    """:func:`evaluate_all` from names, for scripts such as the synthetic demo: ``methods`` as on the
    command line (``clip``, ``sclip``, ``pixelclip+naclip``, ...), ``weights`` {name: checkpoint},
    ``benchmarks`` (default: ``cfg.DATASETS.TEST``). Resumable like the tool (same ``output_dir``
    layout). Returns {method: {benchmark: mIoU, "mean": ...}}."""
    rows = parse_methods(list(methods), parse_weights([f"{k}={v}" for k, v in (weights or {}).items()]))
    columns = parse_benchmarks(list(benchmarks or cfg.DATASETS.TEST))
    return evaluate_all(cfg, rows, columns, output_dir)["mIoU"]


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def cell_path(output_dir: str, method: str, benchmark: str) -> str:
    """Where the result of one cell is kept: ``<output>/cells/<method>/<benchmark>.json``."""
    return os.path.join(output_dir, "cells", method, f"{benchmark}.json")


def read_cell(path: str) -> Optional[dict]:
    """A cell result file, or None when it is missing or unreadable (then the cell is recomputed)."""
    try:
        with open(path, encoding="utf-8") as f:
            cell = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        logger.warning("cell file %s is unreadable (%s); the cell is recomputed", path, e)
        return None
    return cell if isinstance(cell, dict) and isinstance(cell.get("metrics"), dict) else None


def protocol_of(cfg) -> Dict[str, object]:
    """The evaluation settings shared by every cell (what a reader needs to compare with papers)."""
    p = cfg.MODEL.PIXELCLIP
    return OrderedDict([
        ("clip_model", p.CLIP_MODEL_NAME), ("clip_pretrained", p.CLIP_PRETRAINED),
        ("test_short_side", cfg.INPUT.MIN_SIZE_TEST), ("test_max_size", cfg.INPUT.MAX_SIZE_TEST),
        ("clip_resolution", list(p.CLIP_RESOLUTION)), ("test_mode", p.TEST.MODE),
        ("slide_overlap", p.TEST.SLIDE_OVERLAP if p.TEST.MODE == "slide" else None), ("flip", p.TEST.FLIP),
        ("feature_resolution", p.TEST.FEATURE_RESOLUTION), ("templates", p.TEST.TEMPLATES),
        ("autocast", p.TEST.AUTOCAST or "fp32"), ("metric", "mIoU (%), Detectron2 SemSegEvaluator"),
    ])


def build_table(cfg, methods: Sequence[Method], benchmarks: Sequence[Tuple[str, str]], output_dir: str,
                fingerprints: Optional[Mapping[Tuple[str, str], str]] = None) -> dict:
    """The table from the cell files under ``output_dir``: mIoU per method and benchmark (None where
    a cell has not run yet, or, given ``fingerprints`` {(method, column): fingerprint}, where its file
    is from another config) and the mean over benchmarks (None unless every cell of the row is there)."""
    rows = OrderedDict()
    for m in methods:
        row = OrderedDict()
        for column, _ in benchmarks:
            cell = read_cell(cell_path(output_dir, m.name, column))
            if cell is not None and fingerprints is not None:
                if cell.get("fingerprint") != fingerprints[m.name, column]:
                    cell = None  # computed under another config or checkpoint
            row[column] = None if cell is None else cell["metrics"].get("mIoU")
        values = list(row.values())
        row["mean"] = sum(values) / len(values) if values and all(v is not None for v in values) else None
        rows[m.name] = row
    return OrderedDict([
        ("protocol", protocol_of(cfg)),
        ("benchmarks", OrderedDict(benchmarks)),
        ("methods", OrderedDict((m.name, asdict(m)) for m in methods)),
        ("mIoU", rows),
    ])


def format_table(table: dict) -> str:
    """Markdown: one row per method (weights, DENSE_MODE), one column per benchmark, then the mean."""
    columns = list(table["benchmarks"])
    header = "| Method | Weights | DENSE_MODE | " + " | ".join(columns) + " | Mean |"
    rule = "|---|---|---|" + "---:|" * (len(columns) + 1)
    lines = [header, rule]
    for name, row in table["mIoU"].items():
        m = table["methods"][name]
        cells = ["–" if row[c] is None else f"{row[c]:.2f}" for c in columns + ["mean"]]
        lines.append(f"| {name} | {m['weights']} | {m['dense_mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: dict, output_dir: str) -> str:
    """``table.json`` and ``table.md`` in ``output_dir`` (atomic); returns the Markdown."""
    text = format_table(table)
    atomic_write(os.path.join(output_dir, "table.json"), json.dumps(table, indent=2, allow_nan=False) + "\n")
    atomic_write(os.path.join(output_dir, "table.md"), text)
    return text


# ----------------------------------------------------------------------------------------------
# the grid
# ----------------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def evaluate_all(cfg, methods: Sequence[Method], benchmarks: Sequence[Tuple[str, str]], output_dir: str,
                 recompute: bool = False) -> dict:
    """Evaluate every (method, benchmark) cell not already finished under ``output_dir``; returns the table.

    Arguments:
        cfg: the shared config (its MODEL.WEIGHTS, DENSE_MODE and DATASETS.TEST are set per cell).
        methods: rows, from :func:`parse_methods`.
        benchmarks: columns, from :func:`parse_benchmarks`.
        output_dir: cell files, D2 outputs of each cell (``runs/<method>/<benchmark>/``), the table.
        recompute: ignore finished cells.
    """
    plan = []  # [(method, column, cell config, fingerprint)] still to evaluate, decided once on every rank
    reused, fingerprints = 0, {}
    for m in methods:
        for column, dataset in benchmarks:
            cell_cfg = cell_config(cfg, m, dataset, os.path.join(output_dir, "runs", m.name, column))
            fingerprint = fingerprints[m.name, column] = cell_fingerprint(cell_cfg)
            done = None if recompute else read_cell(cell_path(output_dir, m.name, column))
            if done is not None and done.get("fingerprint") == fingerprint:
                reused += 1
                continue
            if done is not None:
                logger.info("cell %s × %s: config or checkpoint changed since it ran; recomputing", m.name, column)
            plan.append((m, column, cell_cfg, fingerprint))
    comm.synchronize()
    images = {dataset: len(DatasetCatalog.get(dataset)) for dataset in {c.DATASETS.TEST[0] for _, _, c, _ in plan}}
    total = sum(images[c.DATASETS.TEST[0]] for _, _, c, _ in plan)
    logger.info("evaluate_all: %d methods × %d benchmarks; %d cells finished earlier, %d to run (%d images)",
                len(methods), len(benchmarks), reused, len(plan), total)
    if comm.is_main_process():
        write_table(build_table(cfg, methods, benchmarks, output_dir, fingerprints), output_dir)
    start, done_images, models = time.perf_counter(), 0, {}
    for index, (m, column, cell_cfg, fingerprint) in enumerate(plan):
        if m.name not in models:
            models.clear()  # one model in memory at a time; cells of a method are consecutive
            models[m.name] = build_model_for(cell_cfg)
        t0 = time.perf_counter()
        metrics = evaluate_cell(cell_cfg, models[m.name])
        seconds = time.perf_counter() - t0
        dataset = cell_cfg.DATASETS.TEST[0]
        done_images += images[dataset]
        if comm.is_main_process():
            record = OrderedDict([
                ("method", m.name), ("benchmark", column), ("dataset", dataset), ("weights", m.weights),
                ("checkpoint", m.checkpoint), ("dense_mode", m.dense_mode), ("fingerprint", fingerprint),
                ("images", images[dataset]), ("seconds", round(seconds, 3)), ("metrics", metrics),
            ])
            atomic_write(cell_path(output_dir, m.name, column), json.dumps(record, indent=2, allow_nan=False) + "\n")
            write_table(build_table(cfg, methods, benchmarks, output_dir, fingerprints), output_dir)
        elapsed = time.perf_counter() - start
        eta = elapsed / max(done_images, 1) * (total - done_images)
        logger.info("[%d/%d] %s × %s: mIoU %s (%s); elapsed %s, ETA %s", index + 1, len(plan), m.name, column,
                    "–" if metrics.get("mIoU") is None else f"{metrics['mIoU']:.2f}", _duration(seconds),
                    _duration(elapsed), _duration(eta))
    table = build_table(cfg, methods, benchmarks, output_dir, fingerprints)
    if comm.is_main_process():
        text = write_table(table, output_dir)
        logger.info("mIoU (%%) of every method and benchmark (%s):\n%s", os.path.join(output_dir, "table.md"), text)
    return table
