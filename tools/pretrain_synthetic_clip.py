#!/usr/bin/env python
"""Pre-train the synthetic world's tiny CLIP on image/caption pairs only (contrastive, CLIP's loss).

    python tools/pretrain_synthetic_clip.py                        # the shipped weights, seed 0
    python tools/pretrain_synthetic_clip.py --seed 1 --output output/clip_seed1.pt --steps 600

The output is an open_clip checkpoint: ``open_clip.create_model("PixelCLIP-Synthetic-ViT",
pretrained=path)`` (after ``import pixelclip.clip``) and ``MODEL.PIXELCLIP.CLIP_PRETRAINED path``
load it. A run resumes from ``<output>.state`` if interrupted. See ``pixelclip/synthetic/pretrain.py``.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pixelclip.clip  # noqa: E402,F401  (registers the tiny CLIP architecture with open_clip)
from pixelclip.synthetic.pretrain import PretrainConfig, pretrain_synthetic_clip  # noqa: E402
from pixelclip.utils.cli import run_tool  # noqa: E402

DEFAULT_OUTPUT = "pixelclip/synthetic/weights/synthetic_clip_vit_seed0.pt"


def main(argv=None) -> int:
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="checkpoint to write (%(default)s)")
    parser.add_argument("--model", default=defaults.model_name, help="open_clip architecture (%(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--pool-size", type=int, default=defaults.pool_size, help="distinct training scenes")
    parser.add_argument("--eval-size", type=int, default=defaults.eval_size, help="held-out scenes for the recognition check")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="pre-train even if the output exists")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    if os.path.isfile(args.output) and not args.force:
        logging.info("%s exists; nothing to do (--force to pre-train again)", args.output)
        return 0
    cfg = PretrainConfig(model_name=args.model, seed=args.seed, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, pool_size=args.pool_size, eval_size=args.eval_size, num_threads=args.threads)
    summary = pretrain_synthetic_clip(cfg, args.output)
    print(json.dumps({"output": args.output, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    run_tool("pretrain_synthetic_clip", main)
