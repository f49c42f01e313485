#!/usr/bin/env python
"""Train or evaluate PixelCLIP with Detectron2.

    python tools/train_net.py --config-file configs/pixelclip_vitb.yaml --num-gpus 4
    python tools/train_net.py --config-file configs/pixelclip_vitb.yaml --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file configs/pixelclip_vitb.yaml --num-gpus 2 MODEL.DEVICE cpu   # gloo
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402

import pixelclip  # noqa: E402,F401  (registers PixelCLIP's components)
from pixelclip import get_pixelclip_cfg  # noqa: E402
from pixelclip.clip.build import ClipWeightsError  # noqa: E402
from pixelclip.trainer import Trainer  # noqa: E402


def setup(args):
    cfg = get_pixelclip_cfg(args.config_file, args.opts)  # the recipe, then the file (which inherits it)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    try:
        if args.eval_only:
            model = Trainer.build_model(cfg)
            DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
            return Trainer.test(cfg, model)
        trainer = Trainer(cfg)
    except ClipWeightsError as e:
        sys.exit(f"[pixelclip] {e}")
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
