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

from detectron2.engine import default_argument_parser  # noqa: E402

import pixelclip  # noqa: E402,F401  (registers PixelCLIP's components)
from pixelclip.launch import launch_train_net, train_net_main  # noqa: E402
from pixelclip.utils.cli import run_tool  # noqa: E402


def main(args):
    """One process (Detectron2's ``train_net.main``): train, or evaluate with ``--eval-only``."""
    return train_net_main(args)


def launch_main():
    launch_train_net(default_argument_parser().parse_args())


if __name__ == "__main__":
    run_tool("train_net", launch_main)
