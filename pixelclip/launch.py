"""``train_net``'s main and launch, shared by ``tools/train_net.py`` and the projects' ``train_net.py``
(Detectron2's ``tools/train_net.py`` with PixelCLIP's config, checks, logger, checkpointer and trainer)."""
import functools
from typing import Any, Callable, Sequence

from detectron2.engine import default_setup, launch

from .checkpoint import build_checkpointer
from .preflight import preflight, setup_pixelclip_logger
from .trainer import Trainer
from .utils.cli import WorkerGuard, load_config

ConfigFunc = Callable[[Any], None]


def train_net_main(args, config_funcs: Sequence[ConfigFunc] = ()):
    """One process: train ``args.config_file`` (resuming with ``--resume``), or with ``--eval-only``
    evaluate ``MODEL.WEIGHTS`` on ``DATASETS.TEST``. ``config_funcs``: a project's config functions."""
    cfg = load_config(args.config_file, args.opts, config_funcs=config_funcs)  # the recipe, then the file
    default_setup(cfg, args)
    setup_pixelclip_logger(cfg.OUTPUT_DIR)  # the package's lines go to OUTPUT_DIR/log.txt too
    if args.eval_only:
        model = Trainer.build_model(cfg)
        build_checkpointer(cfg, model, cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def launch_train_net(args, config_funcs: Sequence[ConfigFunc] = ()):
    """Check the run once (:func:`pixelclip.preflight.preflight`), then run :func:`train_net_main` in
    ``args.num_gpus × args.num_machines`` processes with Detectron2's ``launch``."""
    cfg = load_config(args.config_file, args.opts, config_funcs=config_funcs)
    preflight(cfg, resume=args.resume, eval_only=args.eval_only)
    main = functools.partial(train_net_main, config_funcs=tuple(config_funcs))
    workers = args.num_gpus * args.num_machines
    return launch(WorkerGuard("train_net", main) if workers > 1 else main, args.num_gpus,
                  num_machines=args.num_machines, machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
