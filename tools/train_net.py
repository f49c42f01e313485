#!/usr/bin/env python
"""Train or evaluate PixelCLIP with Detectron2.

    python tools/train_net.py --config-file configs/pixelclip_vitb.yaml --num-gpus 4
    python tools/train_net.py --config-file configs/pixelclip_vitb.yaml --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file configs/pixelclip_vitb.yaml --num-gpus 2 MODEL.DEVICE cpu   # gloo

Mistakes (a config key that does not exist, a missing MODEL.WEIGHTS or CLIP weights file, an output
folder that cannot be written, a dataset that is not prepared, a checkpoint of another model) end
with one line, ``[train_net] <what> — <what to do>``, and exit status 1; they are checked once,
before the config dump and before worker processes start. ``--debug`` (or PIXELCLIP_DEBUG=1)
shows the traceback.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402

import pixelclip  # noqa: E402,F401  (registers PixelCLIP's components)
from pixelclip.checkpoint import build_checkpointer  # noqa: E402
from pixelclip.preflight import preflight, setup_pixelclip_logger  # noqa: E402
from pixelclip.trainer import Trainer  # noqa: E402
from pixelclip.utils.cli import WorkerGuard, load_config, run_tool  # noqa: E402


def setup(args):
    cfg = load_config(args.config_file, args.opts)  # the recipe, then the file (which inherits it)
    default_setup(cfg, args)
    setup_pixelclip_logger(cfg.OUTPUT_DIR)  # the package's lines go to OUTPUT_DIR/log.txt too
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        build_checkpointer(cfg, model, cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def launch_main():
    args = default_argument_parser().parse_args()
    preflight(load_config(args.config_file, args.opts), resume=args.resume, eval_only=args.eval_only)
    workers = args.num_gpus * args.num_machines
    launch(WorkerGuard("train_net", main) if workers > 1 else main, args.num_gpus, num_machines=args.num_machines,
           machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    run_tool("train_net", launch_main)
