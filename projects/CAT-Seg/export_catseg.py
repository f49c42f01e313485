#!/usr/bin/env python
"""PixelCLIP's fine-tuned CLIP as CAT-Seg's starting MODEL.WEIGHTS (projects/CAT-Seg/README.md).

    python projects/CAT-Seg/export_catseg.py --pixelclip-checkpoint output/pixelclip_vitb/model_final.pth \\
        --clip ViT-B/16 --output pixelclip_vitb_catseg.pth
    python projects/CAT-Seg/export_catseg.py --pixelclip-checkpoint output/pixelclip_vitl_336/model_final.pth \\
        --clip ViT-L/14@336px --output pixelclip_vitl336_catseg.pth

``--clip`` is CAT-Seg's MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED (ViT-B/16, ViT-L/14@336px, ViT-L/14); the
PixelCLIP architecture defaults to the one that fits it (ViT-B-16-quickgelu, ViT-L-14-336-quickgelu,
ViT-L-14-quickgelu); ``--config-file`` (the PixelCLIP config the checkpoint was trained with) or
``--model-name`` name another. Prints a JSON report and writes it to ``<output>.report.json``.
Mistakes end with one line, ``[export_catseg] <what> — <what to do>`` (``--debug``: the traceback).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]  # pixelclip_catseg, then the repository

from detectron2.utils.logger import setup_logger  # noqa: E402

import pixelclip  # noqa: E402,F401
from pixelclip.preflight import check_output_dir  # noqa: E402
from pixelclip.utils.cli import load_config, run_tool  # noqa: E402
from pixelclip.utils.io import atomic_write  # noqa: E402
from pixelclip_catseg.export import CATSegExportError, export_catseg  # noqa: E402
from pixelclip_catseg.layout import CATSEG_CLIPS, CATSegLayoutError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pixelclip-checkpoint", required=True, help="PixelCLIP model_final.pth (or release / open_clip file)")
    parser.add_argument("--output", required=True, help="the CAT-Seg MODEL.WEIGHTS file to write")
    parser.add_argument("--clip", default="ViT-B/16", choices=sorted(CATSEG_CLIPS) + ["custom"],
                        help="CAT-Seg's MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED (custom: no size check, needs --model-name)")
    parser.add_argument("--model-name", default="", help="open_clip architecture of the checkpoint")
    parser.add_argument("--config-file", default="", help="the PixelCLIP config of the checkpoint (its CLIP_MODEL_NAME)")
    parser.add_argument("--teacher", action="store_true", help="export the EMA teacher's image encoder")
    parser.add_argument("--resize-positions", action="store_true",
                        help="store the position embedding resized to CAT-Seg's grid when only its rows differ")
    parser.add_argument("--allow-gelu", action="store_true", help="accept a GELU architecture name")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    setup_logger(name="pixelclip", abbrev_name="pixelclip")
    setup_logger(name="pixelclip_catseg", abbrev_name="catseg")
    check_output_dir(os.path.dirname(os.path.abspath(args.output)))
    name = args.model_name
    if not name and args.config_file:
        name = load_config(args.config_file, args.opts, freeze=False).MODEL.PIXELCLIP.CLIP_MODEL_NAME
    try:
        report = export_catseg(args.pixelclip_checkpoint, args.output, args.clip, name, args.teacher,
                               args.resize_positions, args.allow_gelu)
    except CATSegLayoutError as e:
        raise CATSegExportError(str(e)) from e
    text = json.dumps(report, indent=2)
    atomic_write(args.output + ".report.json", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    run_tool("export_catseg", main)
