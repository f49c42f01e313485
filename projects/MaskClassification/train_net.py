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

from detectron2.engine import default_argument_parser  # noqa: E402

import pixelclip  # noqa: E402,F401  (registers PixelCLIP's components)
from pixelclip.launch import launch_train_net, train_net_main  # noqa: E402
from pixelclip.utils.cli import run_tool  # noqa: E402
from pixelclip_maskcls import add_mask_classification_config  # noqa: E402

CONFIG_FUNCS = (add_mask_classification_config,)


def main(args):
    """One process (Detectron2's ``train_net.main``): evaluate with ``--eval-only`` (or train)."""
    return train_net_main(args, config_funcs=CONFIG_FUNCS)


def launch_main():
    launch_train_net(default_argument_parser().parse_args(), config_funcs=CONFIG_FUNCS)


if __name__ == "__main__":
    run_tool("train_net", launch_main)
