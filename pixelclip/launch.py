"""``train_net``'s main and launch, shared by ``tools/train_net.py`` and the projects' ``train_net.py``
(Detectron2's ``tools/train_net.py`` with PixelCLIP's config, checks, logger, checkpointer and trainer)."""
import functools
import os
import shlex
import sys
from typing import Any, Callable, Sequence

from detectron2.engine import default_setup, launch

from .checkpoint import build_checkpointer
from .data.checks import check_test_datasets
from .errors import PixelCLIPError
from .preflight import held_back_logs, preflight, setup_pixelclip_logger
from .trainer import Trainer
from .utils.cli import WorkerGuard, debug_enabled, load_config, report_error

ConfigFunc = Callable[[Any], None]


def train_net_main(args, config_funcs: Sequence[ConfigFunc] = ()):
    """One process: train ``args.config_file`` (resuming with ``--resume``), or with ``--eval-only``
    evaluate ``MODEL.WEIGHTS`` on ``DATASETS.TEST``. ``config_funcs``: a project's config functions."""
    cfg = load_config(args.config_file, args.opts, config_funcs=config_funcs)  # the recipe, then the file
    with held_back_logs():  # D2's dumps come after the checks of the test files and of MODEL.WEIGHTS
        default_setup(cfg, args)
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
    ``args.num_gpus × args.num_machines`` processes with Detectron2's ``launch``."""
    cfg = load_config(args.config_file, args.opts, config_funcs=config_funcs)
    preflight(cfg, resume=args.resume, eval_only=args.eval_only)
    main = functools.partial(train_net_main, config_funcs=tuple(config_funcs))
    workers = args.num_gpus * args.num_machines
    try:
        return launch(WorkerGuard("train_net", main) if workers > 1 else main, args.num_gpus,
                      num_machines=args.num_machines, machine_rank=args.machine_rank, dist_url=args.dist_url,
                      args=(args,))
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
