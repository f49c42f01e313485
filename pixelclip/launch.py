"""``train_net``'s main and launch, shared by ``tools/train_net.py`` and the projects' ``train_net.py``
(Detectron2's ``tools/train_net.py`` with PixelCLIP's config, checks, logger, checkpointer and trainer).

Process groups: Detectron2's ``launch`` picks NCCL whenever the machine has CUDA, also for a run on
``MODEL.DEVICE cpu`` (whose tensors NCCL cannot reduce). :func:`launch` here chooses the backend from
``MODEL.DEVICE`` (:func:`dist_backend`): a CUDA run goes through Detectron2's ``launch`` unchanged, a CPU
run through the same steps with gloo and without binding a GPU.
"""
import functools
import logging
import os
import shlex
import sys
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import detectron2.engine
from detectron2.engine import default_setup
from detectron2.engine.launch import DEFAULT_TIMEOUT, _find_free_port
from detectron2.utils import comm

from .checkpoint import build_checkpointer
from .data.checks import check_test_datasets
from .errors import PixelCLIPError
from .preflight import held_back_logs, preflight, setup_pixelclip_logger
from .trainer import Trainer
from .utils.cli import WorkerGuard, debug_enabled, load_config, report_error
from .utils.cuda_settings import apply_cuda_settings

ConfigFunc = Callable[[Any], None]

logger = logging.getLogger(__name__)


def dist_backend(device: str) -> str:
    """The process-group backend for ``MODEL.DEVICE`` = ``device``: ``nccl`` for CUDA, ``gloo`` otherwise
    (whether or not the machine has CUDA)."""
    return "nccl" if torch.device(str(device)).type == "cuda" else "gloo"


def _gloo_worker(local_rank: int, main_func, world_size: int, num_per_machine: int, machine_rank: int,
                 dist_url: str, args: tuple, timeout: timedelta) -> None:
    """Detectron2's ``_distributed_worker`` with the gloo backend and no ``torch.cuda.set_device``."""
    rank = machine_rank * num_per_machine + local_rank
    dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout)
    comm.create_local_process_group(num_per_machine)
    comm.synchronize()
    main_func(*args)


def launch(main_func, num_processes_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str = None, args: tuple = (), device: str = "cuda", timeout: timedelta = DEFAULT_TIMEOUT):
    """Detectron2's ``launch`` (same arguments) whose process group uses :func:`dist_backend` of ``device``
    (``MODEL.DEVICE``): NCCL for CUDA runs (D2's own launch), gloo for CPU runs even on a CUDA machine."""
    world_size = num_machines * num_processes_per_machine
    if world_size == 1 or dist_backend(device) == "nccl":
        return detectron2.engine.launch(main_func, num_processes_per_machine, num_machines=num_machines,
                                        machine_rank=machine_rank, dist_url=dist_url, args=args, timeout=timeout)
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url 'auto' works on one machine only: give --dist-url tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    logger.info("MODEL.DEVICE %s: %d processes with the gloo backend", device, world_size)
    mp.start_processes(_gloo_worker, nprocs=num_processes_per_machine, daemon=False,
                       args=(main_func, world_size, num_processes_per_machine, machine_rank, dist_url, args, timeout))


def train_net_main(args, config_funcs: Sequence[ConfigFunc] = ()):
    """One process: train ``args.config_file`` (resuming with ``--resume``), or with ``--eval-only``
    evaluate ``MODEL.WEIGHTS`` on ``DATASETS.TEST``. ``config_funcs``: a project's config functions."""
    cfg = load_config(args.config_file, args.opts, config_funcs=config_funcs)  # the recipe, then the file
    with held_back_logs():  # D2's dumps come after the checks of the test files and of MODEL.WEIGHTS
        default_setup(cfg, args)  # also cudnn.benchmark = CUDNN_BENCHMARK when training
        apply_cuda_settings(cfg)  # TF32 (MODEL.PIXELCLIP.ALLOW_TF32)
        setup_pixelclip_logger(cfg.OUTPUT_DIR)  # the package's lines go to OUTPUT_DIR/log.txt too
        check_test_datasets(cfg.DATASETS.TEST)  # images and label files pair up
        if args.eval_only:
            model = Trainer.build_model(cfg)
            build_checkpointer(cfg, model, cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        else:
            trainer = Trainer(cfg)
            trainer.resume_or_load(resume=args.resume)
    if args.eval_only:
        return Trainer.test(cfg, model)
    return trainer.train()


def launch_train_net(args, config_funcs: Sequence[ConfigFunc] = ()):
    """Check the run once (:func:`pixelclip.preflight.preflight`), then run :func:`train_net_main` in
    ``args.num_gpus × args.num_machines`` processes with :func:`launch` (NCCL on CUDA, gloo on CPU)."""
    cfg = load_config(args.config_file, args.opts, config_funcs=config_funcs)
    preflight(cfg, resume=args.resume, eval_only=args.eval_only)
    main = functools.partial(train_net_main, config_funcs=tuple(config_funcs))
    workers = args.num_gpus * args.num_machines
    try:
        return launch(WorkerGuard("train_net", main) if workers > 1 else main, args.num_gpus,
                      num_machines=args.num_machines, machine_rank=args.machine_rank, dist_url=args.dist_url,
                      args=(args,), device=cfg.MODEL.DEVICE)
    except BaseException as e:  # Ctrl-C here, or a worker that stopped on it (exit status 130)
        ctrl_c = isinstance(e, KeyboardInterrupt) or (
            type(e).__name__ == "ProcessExitedException" and getattr(e, "exit_code", None) == 130)
        if not ctrl_c or debug_enabled():
            raise
        report_error("train_net", interrupted(cfg, args.eval_only))
        sys.exit(130)


def interrupted(cfg, eval_only: bool, argv: Sequence[str] = None) -> PixelCLIPError:
    """The one line after Ctrl-C: where the last checkpoint is (``OUTPUT_DIR/last_checkpoint``) and the
    command that resumes from it (this command line with ``--resume``)."""
    argv = list(sys.argv if argv is None else argv)
    if eval_only:
        return PixelCLIPError("interrupted (Ctrl-C) during evaluation; no summary was written",
                              f"run the same command again: python {shlex.join(argv)}")
    command = [*argv[:1], *(["--resume"] if "--resume" not in argv else []), *argv[1:]]
    resume = f"python {shlex.join(command)}"
    try:
        with open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"), encoding="utf-8") as f:
            last = os.path.join(cfg.OUTPUT_DIR, f.read().strip())
    except OSError:
        last = ""
    if last and os.path.isfile(last):
        return PixelCLIPError(f"interrupted (Ctrl-C); the last checkpoint is {last}", f"to resume from it: {resume}")
    return PixelCLIPError(f"interrupted (Ctrl-C) before the first checkpoint (every SOLVER.CHECKPOINT_PERIOD = "
                          f"{cfg.SOLVER.CHECKPOINT_PERIOD} iterations in {cfg.OUTPUT_DIR}): nothing was saved",
                          f"run it again: {resume}")
