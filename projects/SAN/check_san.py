#!/usr/bin/env python
"""Does SAN hold the exported CLIP? Compares every image-encoder tensor (and the text tower), exits 1
listing each missing, misshapen or different tensor.

SAN's own model, built and loaded the way its ``train_net.py --eval-only`` does (run in SAN's folder and
environment; ``MODEL.WEIGHTS`` loaded with Detectron2's ``DetectionCheckpointer``, which skips unknown or
misshapen keys with a log line only)::

    cd SAN
    python /path/to/pixelclip-d2/projects/SAN/check_san.py --pixelclip-clip pixelclip_vitb16_open_clip.pt \\
        --config-file configs/san_clip_vit_res4_coco.yaml MODEL.WEIGHTS san_vit_b_16_pixelclip.pth

A checkpoint file alone (no SAN code needed)::

    python projects/SAN/check_san.py --pixelclip-clip pixelclip_vitb16_open_clip.pt \\
        --san-checkpoint san_vit_b_16_pixelclip.pth

``--positional-embedding san`` (default) does not compare ``clip_visual_extractor.positional_embedding``
(SAN's own after a merge); use ``pixelclip`` for SAN built from the export (step 2a, before training).
With the model, the CLIP blocks' activation must be ``--activation`` (QuickGELU: OpenAI-based CLIPs,
every PixelCLIP ViT config). Importing ``pixelclip_san`` registers ``ViT-B-16-quickgelu`` & co. for
open_clip 2.16 (add ``import pixelclip_san`` to SAN's ``train_net.py`` to use those names there).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pixelclip_san  # noqa: E402,F401  (registers the -quickgelu names before SAN builds its CLIP)
from pixelclip_san.checkpoints import read_clip_state_dict, read_san_checkpoint  # noqa: E402
from pixelclip_san.errors import SanWeightsError  # noqa: E402
from pixelclip_san.verify import POSITIONAL_CHOICES, check_san_holds  # noqa: E402


def build_and_load_san(config_file: str, opts, san_root: str):
    """SAN's model from its config, ``MODEL.WEIGHTS`` loaded as SAN's ``train_net.py --eval-only`` does."""
    sys.path.insert(0, os.path.abspath(san_root))
    import torch

    try:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
        from detectron2.projects.deeplab import add_deeplab_config
        from san import add_san_config
    except ImportError as e:
        raise SanWeightsError(f"cannot import SAN's code ({e})",
                              "run in SAN's folder and environment, or give --san-root") from e
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_san_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if "MODEL.DEVICE" not in opts:
        cfg.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    return model.eval(), cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pixelclip-clip", required=True,
                        help="exported CLIP (open_clip / OpenAI layout) or PixelCLIP checkpoint")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--san-checkpoint", help="check a SAN checkpoint file")
    source.add_argument("--config-file", help="build SAN's model from this SAN config and check it after loading")
    parser.add_argument("--san-root", default=".", help="SAN's folder (default: here)")
    parser.add_argument("--positional-embedding", choices=POSITIONAL_CHOICES, default="san")
    parser.add_argument("--activation", default="QuickGELU", help="QuickGELU, GELU, or none (not checked)")
    parser.add_argument("--no-text", action="store_true", help="do not compare the text tower")
    parser.add_argument("--allow-fp16-rounding", action="store_true",
                        help="accept tensors equal to the export rounded to fp16 (SAN built through open_clip's "
                             "'openai' path from the OpenAI-layout export, step 2a, option 2)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="SAN config overrides KEY VALUE ...")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="read checkpoints that hold Python objects besides tensors by unpickling them in full "
                             "(runs code a crafted file names: only for files whose origin you trust)")
    args = parser.parse_args(argv)
    activation = None if args.activation.lower() == "none" else args.activation
    try:
        clip_sd = read_clip_state_dict(args.pixelclip_clip, args.trust_pickle)
        if args.san_checkpoint:
            where, model = args.san_checkpoint, None
            _, san_sd = read_san_checkpoint(args.san_checkpoint, args.trust_pickle)
        else:
            model, cfg = build_and_load_san(args.config_file, args.opts, args.san_root)
            where = f"SAN built from {args.config_file} with MODEL.WEIGHTS '{cfg.MODEL.WEIGHTS}'"
            san_sd = model.state_dict()
        report = check_san_holds(san_sd, clip_sd, args.positional_embedding, not args.no_text, model, activation,
                                 args.allow_fp16_rounding)
        for line in report.problems():
            print(line)
        report.raise_if_bad(where)
    except SanWeightsError as e:
        print(f"[check_san] {e}", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, "checked": where, "first_rec_layer": report.first_rec_layer,
                      "summary": report.summary(), "skipped": report.skipped,
                      "activation": activation or "not checked"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
