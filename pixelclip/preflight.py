"""Checks a run makes before it starts (before D2's config dump, before spawning workers).

Each check raises a :class:`~pixelclip.errors.PixelCLIPError` naming what is wrong and what to
do. ``tools/train_net.py`` calls :func:`preflight` once in the launching process, so a mistake
is told once, in one line, in seconds, instead of once per worker after minutes:

* ``MODEL.DEVICE`` cuda without a CUDA device; ``SOLVER.AMP.ENABLED`` on a CPU run or with an unknown
  ``SOLVER.AMP.PRECISION``;
* ``OUTPUT_DIR`` that cannot be created or written;
* ``MODEL.WEIGHTS`` that is not a file (unless ``--resume`` finds a checkpoint in OUTPUT_DIR);
* CLIP weights that are neither a local file nor cached and cannot be downloaded now
  (``pixelclip/clip/weights.py``: no model is built, nothing is downloaded);
* ``DATASETS.TRAIN`` / ``DATASETS.TEST`` names that are not registered, benchmark folders that do
  not exist (``pixelclip/data/checks.py``; images and labels are paired when evaluation starts).
"""
import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from .clip.weights import locate_clip_weights
from .data.checks import check_test_datasets, check_train_datasets
from .errors import CheckpointError, ConfigError, OutputDirError

logger = logging.getLogger(__name__)

__all__ = ["preflight", "check_amp", "check_output_dir", "check_model_weights", "check_device", "check_clip_weights",
           "setup_pixelclip_logger", "held_back_logs"]


def check_device(cfg) -> None:
    """``MODEL.DEVICE`` names a device this machine has."""
    device = str(cfg.MODEL.DEVICE)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"MODEL.DEVICE is {device} but this machine has no CUDA device",
                          "add MODEL.DEVICE cpu to the command line (slow, but it works), or run on a GPU machine")


def check_amp(cfg) -> None:
    """``SOLVER.AMP.ENABLED`` only on CUDA (Detectron2's AMPTrainer autocasts CUDA ops only) with a known
    ``SOLVER.AMP.PRECISION``."""
    if not cfg.SOLVER.AMP.ENABLED:
        return
    if torch.device(str(cfg.MODEL.DEVICE)).type != "cuda":
        raise ConfigError(f"SOLVER.AMP.ENABLED trains with CUDA autocast, but MODEL.DEVICE is {cfg.MODEL.DEVICE}",
                          "add SOLVER.AMP.ENABLED False for a CPU run (bfloat16 matmuls are slow on most CPUs)")
    from .trainer import amp_precision

    amp_precision(cfg)


def check_output_dir(path: str) -> None:
    """``path`` exists (created if needed) and a file can be written in it."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise OutputDirError(f"output folder {path} cannot be written ({e.strerror or e})",
                             "set OUTPUT_DIR to a folder you can write, e.g. OUTPUT_DIR output/my_run") from None


def check_model_weights(cfg, resume: bool = False) -> None:
    """``MODEL.WEIGHTS`` is "" or an existing file (URLs are left to D2); with ``resume`` and a
    ``last_checkpoint`` in OUTPUT_DIR, MODEL.WEIGHTS is not used."""
    weights = cfg.MODEL.WEIGHTS
    if not weights or "://" in weights or os.path.isfile(weights):
        return
    if resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")):
        return
    raise CheckpointError(
        f"MODEL.WEIGHTS file not found: {weights}",
        "give the path of a PixelCLIP checkpoint (e.g. output/pixelclip_vitb/model_final.pth), "
        "or MODEL.WEIGHTS \"\" to start from the CLIP weights alone")


def check_clip_weights(cfg) -> None:
    """The CLIP of ``MODEL.PIXELCLIP`` can be built: its weights are a file, cached, or downloadable now."""
    p = cfg.MODEL.PIXELCLIP
    found = locate_clip_weights(p.CLIP_MODEL_NAME, p.CLIP_PRETRAINED)
    logger.debug("CLIP weights: %s", found)


def preflight(cfg, *, resume: bool = False, eval_only: bool = False) -> None:
    """Every check above, in that order (the first problem found stops the run)."""
    check_device(cfg)
    if not eval_only:
        check_amp(cfg)
    check_output_dir(cfg.OUTPUT_DIR)
    check_model_weights(cfg, resume)
    if hasattr(cfg.MODEL, "PIXELCLIP"):
        check_clip_weights(cfg)
    if not eval_only:
        check_train_datasets(cfg.DATASETS.TRAIN)
    check_test_datasets(cfg.DATASETS.TEST, list_files=False)


def setup_pixelclip_logger(output_dir: str = None) -> logging.Logger:
    """The ``pixelclip`` logger, as D2's ``default_setup`` sets up ``detectron2``'s: to the console
    (rank 0) and to ``OUTPUT_DIR/log.txt`` (``log.txt.rank<N>`` for other ranks). Data-loader
    workers forked later inherit it."""
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger

    return setup_logger(output_dir, distributed_rank=comm.get_rank(), name="pixelclip", abbrev_name="pixelclip")


def _to_files_only(logger: logging.Logger, record: logging.LogRecord) -> None:
    """``record`` to the handlers of ``logger`` and its ancestors that write a file (not the console)."""
    while logger is not None:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if stream is not None and stream not in (sys.stdout, sys.stderr) and record.levelno >= handler.level:
                handler.handle(record)
        logger = logger.parent if logger.propagate else None


@contextmanager
def held_back_logs(prefixes: Sequence[str] = ("detectron2", "fvcore")) -> Iterator[None]:
    """Hold back the log records of Detectron2 and fvcore (environment, config and model dumps: some
    500 lines) while the run sets itself up; they are written when the block ends. When it ends with
    an error (a checkpoint of another model, test images without labels), they go to the log files
    only, so that the error's one line is not preceded by the dumps on the console."""
    held = []
    call_handlers = logging.Logger.callHandlers

    def hold(logger: logging.Logger, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in prefixes:
            held.append((logger, record))
        else:
            call_handlers(logger, record)

    logging.Logger.callHandlers = hold
    failed = True
    try:
        yield
        failed = False
    finally:
        logging.Logger.callHandlers = call_handlers
        for logger, record in held:
            _to_files_only(logger, record) if failed else call_handlers(logger, record)
