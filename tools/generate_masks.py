#!/usr/bin/env python
r"""Generate unlabeled masks for a folder of images: SAM's automatic masks or DINO k-means.

    python tools/generate_masks.py --input IMAGES_DIR --output MASKS_DIR --method sam \
        --sam-checkpoint sam_vit_h_4b8939.pth --model-type vit_h
    python tools/generate_masks.py --input IMAGES_DIR --output MASKS_DIR --method dino \
        --dino-weights dino_deitsmall16_pretrain.pth --clusters 16

One SA-1B-style JSON per image, written atomically; rerun the same command to resume.
Split the work with ``--shard i --num-shards n`` (one process per GPU or machine).
Mistakes end with one line, ``[generate_masks] <what> — <what to do>`` (``--debug``: the traceback).
"""
import argparse
import logging
import os
import sys
from typing import Callable, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's pixelclip

import torch  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from pixelclip.errors import ConfigError, DatasetError  # noqa: E402
from pixelclip.masks import BinaryMaskAdapter, DinoKMeansMasker, SamMasker, build_dino_backbone, build_sam  # noqa: E402
from pixelclip.masks.generate import Masker, check_has_images, generate_masks  # noqa: E402
from pixelclip.masks.sam import SAM_MODEL_TYPES  # noqa: E402
from pixelclip.preflight import check_output_dir  # noqa: E402
from pixelclip.utils.cli import run_tool  # noqa: E402

logger = logging.getLogger("pixelclip.tools.generate_masks")

def _number(kind: type, low: float, high: float = float("inf")) -> Callable[[str], float]:
    """An argparse type: ``kind`` in [low, high]; anything else is a usage error naming the range."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if not low <= value <= high:
            bounds = f"at least {low:g}" if high == float("inf") else f"in [{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_COUNT, _AT_LEAST_0, _FRACTION = _number(int, 1), _number(int, 0), _number(float, 0.0, 1.0)

SAM_KNOBS = {  # SamAutomaticMaskGenerator argument -> (type, default)
    "points_per_side": (_COUNT, 32),
    "points_per_batch": (_COUNT, 64),
    "pred_iou_thresh": (_FRACTION, 0.88),
    "stability_score_thresh": (_FRACTION, 0.95),
    "stability_score_offset": (_number(float, 0.0), 1.0),
    "box_nms_thresh": (_FRACTION, 0.7),
    "crop_n_layers": (_AT_LEAST_0, 0),
    "crop_nms_thresh": (_FRACTION, 0.7),
    "crop_overlap_ratio": (_FRACTION, 512 / 1500),
    "crop_n_points_downscale_factor": (_COUNT, 1),
    "min_mask_region_area": (_AT_LEAST_0, 0),
}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="folder of images (searched recursively)")
    p.add_argument("--output", required=True, help="folder of mask files (mirrors --input)")
    p.add_argument("--method", choices=("sam", "dino"), required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shard", type=int, default=0, help="index of this shard, in [0, --num-shards)")
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--verify-existing", action="store_true",
                   help="validate existing mask files and regenerate invalid ones")
    p.add_argument("--summary", default=None, help="summary JSON path (default: in --output)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")

    sam = p.add_argument_group("SAM (--method sam)")
    sam.add_argument("--sam-checkpoint", default="", help="local SAM checkpoint (.pth)")
    sam.add_argument("--model-type", choices=SAM_MODEL_TYPES, default="vit_h")
    for name, (kind, default) in SAM_KNOBS.items():
        sam.add_argument("--" + name.replace("_", "-"), type=kind, default=default,
                         help=f"SamAutomaticMaskGenerator {name} (default {default:g})")

    dino = p.add_argument_group("DINO (--method dino)")
    dino.add_argument("--dino-weights", default="", help="local DINO ViT-S/16 weights (timm or original layout)")
    dino.add_argument("--dino-model", default="vit_small_patch16_224", help="timm architecture name")
    dino.add_argument("--clusters", type=_COUNT, default=16, help="k-means clusters per image (one mask each)")
    dino.add_argument("--kmeans-iters", type=_COUNT, default=100, help="k-means steps at most (the release's 100)")
    dino.add_argument("--kmeans-tol", type=_number(float, 0.0), default=1e-4, help="k-means stops when the centres move less")
    dino.add_argument("--dino-input-size", type=_AT_LEAST_0, default=448,
                      help="square side the image is resized to; 0 = the image as it is (full-size images "
                           "make many tokens: training's online masks use 0 on the 640² crop)")
    dino.add_argument("--kmeans-seed", type=int, default=0,
                      help="seed of the k-means initialisation, drawn anew per image (the same image always "
                           "gives the same masks)")
    return p


def build_masker(args: argparse.Namespace) -> Masker:
    """The masker named by ``--method``, on ``--device``."""
    if args.method == "sam":
        sam = build_sam(args.model_type, args.sam_checkpoint, device=args.device)
        return SamMasker(sam, **{name: getattr(args, name) for name in SAM_KNOBS})
    backbone = build_dino_backbone(args.dino_model, args.dino_weights)
    masker = DinoKMeansMasker(backbone, num_clusters=args.clusters, kmeans_iters=args.kmeans_iters,
                              kmeans_tol=args.kmeans_tol, input_size=args.dino_input_size,
                              seed=args.kmeans_seed).to(args.device)
    return BinaryMaskAdapter(masker.mask_image)


def main(argv: Optional[List[str]] = None) -> dict:
    args = get_parser().parse_args(argv)
    setup_logger(name="pixelclip")
    if not os.path.isdir(args.input):
        raise DatasetError(f"--input {args.input!r} is not a folder", "give the folder of images to segment")
    if args.num_shards < 1 or not 0 <= args.shard < args.num_shards:
        raise ConfigError(f"--shard must be in [0, --num-shards), got {args.shard} of {args.num_shards}",
                          "number the shards 0 .. n-1")
    check_has_images(args.input)  # before a folder is made or a model is built
    check_output_dir(args.output)
    weights = {"sam": ("--sam-checkpoint", args.sam_checkpoint), "dino": ("--dino-weights", args.dino_weights)}
    flag, given = weights[args.method]
    if not given:
        raise ConfigError(f"--method {args.method} needs {flag}: a local weights file (nothing is downloaded)",
                          "see --help for the files each method takes")
    try:
        masker = build_masker(args)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(" ".join(str(e).split()), "check --method and its weights options (--help)") from None
    sam_only = set(SAM_KNOBS) | {"sam_checkpoint", "model_type"}
    dino_only = {"dino_weights", "dino_model", "clusters", "kmeans_iters", "kmeans_tol", "dino_input_size",
                 "kmeans_seed"}
    unused = dino_only if args.method == "sam" else sam_only
    options = {k: v for k, v in vars(args).items()
               if k not in unused and k not in ("input", "output", "summary", "no_progress")}
    return generate_masks(
        masker, args.input, args.output, shard=args.shard, num_shards=args.num_shards,
        verify_existing=args.verify_existing, progress=not args.no_progress,
        summary_path=args.summary, extra_summary={"method": args.method, "options": options},
    )


if __name__ == "__main__":
    run_tool("generate_masks", lambda: main(sys.argv[1:]))
