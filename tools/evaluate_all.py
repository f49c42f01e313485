#!/usr/bin/env python
"""Evaluate dense-CLIP methods × benchmarks under one protocol and write one mIoU table.

    python tools/evaluate_all.py --config-file configs/pixelclip_vitb.yaml \\
        --methods clip,maskclip,sclip,clearclip,naclip,pixelclip,pixelclip+sclip \\
        --benchmarks coco_stuff_171,ade20k_150,context_59,cityscapes_19,voc_20 \\
        --weights pixelclip=output/pixelclip_vitb/model_final.pth --output output/evaluate_all

A method is WEIGHTS+DENSE_MODE (``clip``, ``sclip``, ... are the pre-trained CLIP with that mode;
``pixelclip`` = ``pixelclip+value``); every cell runs what ``train_net.py --eval-only`` runs. Finished
cells are kept in ``<output>/cells/`` and reused by the next call; the table is ``<output>/table.md``
and ``table.json``. Trailing ``KEY VALUE`` pairs override the config, as for train_net.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectron2.engine import default_argument_parser, default_setup  # noqa: E402

import pixelclip  # noqa: E402,F401  (registers PixelCLIP's components and datasets)
from pixelclip.errors import ConfigError  # noqa: E402
from pixelclip.evaluate_all import (  # noqa: E402
    BENCHMARKS,
    DEFAULT_BENCHMARKS,
    DEFAULT_METHODS,
    METHOD_ALIASES,
    evaluate_all,
    parse_benchmarks,
    parse_methods,
    parse_weights,
)
from pixelclip.launch import launch  # noqa: E402  (gloo for MODEL.DEVICE cpu, NCCL for cuda)
from pixelclip.preflight import setup_pixelclip_logger  # noqa: E402
from pixelclip.utils.cuda_settings import apply_cuda_settings  # noqa: E402
from pixelclip.utils.cli import WorkerGuard, load_config, run_tool  # noqa: E402


def parse_args(argv=None):
    parser = default_argument_parser(epilog=__doc__)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated: {', '.join(METHOD_ALIASES)}, a --weights name, or WEIGHTS+MODE "
                             "(e.g. pixelclip+sclip)")
    parser.add_argument("--benchmarks", default=",".join(DEFAULT_BENCHMARKS),
                        help=f"comma-separated: {', '.join(BENCHMARKS)} or registered dataset names")
    parser.add_argument("--weights", action="append", default=[], metavar="[NAME=]PATH",
                        help="a checkpoint to evaluate (repeatable); a bare PATH is named 'pixelclip'")
    parser.add_argument("--output", default="", help="output folder (default: <OUTPUT_DIR>/evaluate_all)")
    parser.add_argument("--recompute", action="store_true", help="ignore finished cells and evaluate them again")
    return parser.parse_args(argv)


def setup(args):
    cfg = load_config(args.config_file, args.opts, freeze=False)  # the recipe, then the file
    cfg.OUTPUT_DIR = args.output or os.path.join(cfg.OUTPUT_DIR, "evaluate_all")
    cfg.freeze()
    default_setup(cfg, args)
    apply_cuda_settings(cfg)  # TF32 on CUDA (MODEL.PIXELCLIP.ALLOW_TF32)
    setup_pixelclip_logger(cfg.OUTPUT_DIR)
    return cfg


def main(args):
    cfg = setup(args)
    try:
        weights = parse_weights(args.weights)
        methods = parse_methods([m for m in args.methods.split(",") if m], weights)
        benchmarks = parse_benchmarks([b for b in args.benchmarks.split(",") if b])
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e), "see tools/evaluate_all.py --help") from None
    return evaluate_all(cfg, methods, benchmarks, cfg.OUTPUT_DIR, recompute=args.recompute)


def launch_main():
    args = parse_args()
    workers = args.num_gpus * args.num_machines
    device = load_config(args.config_file, args.opts).MODEL.DEVICE
    launch(WorkerGuard("evaluate_all", main) if workers > 1 else main, args.num_gpus, num_machines=args.num_machines,
           machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,), device=device)


if __name__ == "__main__":
    run_tool("evaluate_all", launch_main)
