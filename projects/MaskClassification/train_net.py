#!/usr/bin/env python
"""Zero-shot mask classification with CLIP / PixelCLIP: evaluate with Detectron2 (inference only).

From the repository root, or from this folder (paths in configs and overrides are then relative to it):

    python projects/MaskClassification/train_net.py --eval-only \\
        --config-file projects/MaskClassification/configs/gt_dense_vitb.yaml [MODEL.WEIGHTS model_final.pth]
    cd projects/MaskClassification && python train_net.py --eval-only --config-file configs/gt_dense_vitb.yaml

PixelCLIP's ``tools/train_net.py`` with this project's config function (``pixelclip_maskcls``); the
trainer maps test images with the mapper ``INPUT.TEST_MAPPER_NAME`` names (``pixelclip.data.build_test_mapper``); mistakes end with one line,
``[train_net] <what> — <what to do>``, and exit status 1 (``--debug`` shows the traceback).
"""
import os
import sys

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, PROJECT_DIR)  # pixelclip_maskcls, without installing this project
sys.path.insert(1, os.path.dirname(os.path.dirname(PROJECT_DIR)))  # pixelclip, from this checkout

from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402

import pixelclip  # noqa: E402,F401  (registers PixelCLIP's components)
from pixelclip.checkpoint import build_checkpointer  # noqa: E402
from pixelclip.preflight import preflight, setup_pixelclip_logger  # noqa: E402
from pixelclip.trainer import Trainer  # noqa: E402
from pixelclip.utils.cli import WorkerGuard, load_config, run_tool  # noqa: E402
from pixelclip_maskcls import add_mask_classification_config  # noqa: E402


def setup(args):
    cfg = load_config(args.config_file, args.opts, config_funcs=(add_mask_classification_config,))
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
    cfg = load_config(args.config_file, args.opts, config_funcs=(add_mask_classification_config,))
    preflight(cfg, resume=args.resume, eval_only=args.eval_only)
    workers = args.num_gpus * args.num_machines
    launch(WorkerGuard("train_net", main) if workers > 1 else main, args.num_gpus, num_machines=args.num_machines,
           machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    run_tool("train_net", launch_main)
