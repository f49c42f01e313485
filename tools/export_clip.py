#!/usr/bin/env python
"""Export PixelCLIP's fine-tuned CLIP for other frameworks, or import the authors' release.

    # (a) open_clip checkpoint (FC-CLIP: CLIP_MODEL_NAME + CLIP_PRETRAINED_WEIGHTS, e.g. with a released
    #     FC-CLIP checkpoint as MODEL.WEIGHTS: those do not store the CLIP)
    python tools/export_clip.py open-clip --weights output/pixelclip_convnext_l/model_final.pth \\
        --model-name convnext_large_d_320 --output pixelclip_convnext_l_open_clip.pt
    # (b) OpenAI-layout ViT state dict (OpenAI's clip.load(path) / build_model; ZegFormer's CLIP_PRETRAINED)
    python tools/export_clip.py openai --weights output/pixelclip_vitb/model_final.pth \\
        --config-file configs/pixelclip_vitb.yaml --output pixelclip_vitb16_openai.pt
    # (c) replace the image encoder inside another D2 checkpoint that stores one (prefix: fcclip |
    #     zegformer | any); a checkpoint without '<prefix>visual.*' is refused with the route that fits it
    python tools/export_clip.py merge --weights output/pixelclip_convnext_l/model_final.pth \\
        --model-name convnext_large_d_320 --target my_fcclip/model_final.pth --prefix fcclip --output fcclip_pixelclip.pth
    # the authors' release -> this project's checkpoint layout (MODEL.WEIGHTS)
    python tools/export_clip.py import-release --release pixelclip_vit_base.pth \\
        --config-file configs/pixelclip_vitb.yaml --output pixelclip_vitb_release.pth

``--teacher`` exports the EMA teacher's image encoder instead of the student's. Each command prints
a JSON report (for ``merge``: every key it replaced) and writes it to ``<output>.report.json``.
Files are written atomically. Mistakes end with one line, ``[export_clip] <what> — <what to do>``
(``--debug``: the traceback).
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectron2.utils.logger import setup_logger  # noqa: E402

import pixelclip  # noqa: E402,F401
from pixelclip.export import (  # noqa: E402
    ExportError,
    export_open_clip,
    export_openai,
    load_release_checkpoint,
    merge_visual_weights,
)
from pixelclip.preflight import check_output_dir  # noqa: E402
from pixelclip.utils.cli import load_config, run_tool  # noqa: E402
from pixelclip.utils.io import atomic_write  # noqa: E402

logger = logging.getLogger("pixelclip.tools.export_clip")


def _cfg(args):
    return load_config(args.config_file, args.opts, freeze=False)


def _model_name(args) -> str:
    if args.model_name:
        return args.model_name
    if args.config_file:
        return _cfg(args).MODEL.PIXELCLIP.CLIP_MODEL_NAME
    raise ExportError("give --model-name (the open_clip architecture) or --config-file (its CLIP_MODEL_NAME)")


def _import_release(args) -> dict:
    from detectron2.modeling import build_model

    from pixelclip.clip.build import weights_loaded_next
    from pixelclip.export import save_checkpoint

    cfg = _cfg(args)
    cfg.MODEL.PIXELCLIP.CLIP_PRETRAINED = ""  # the release provides every CLIP weight: build without downloading
    cfg.MODEL.DEVICE = "cpu"
    with weights_loaded_next(args.release):
        model = build_model(cfg)
    report = load_release_checkpoint(model, args.release)
    placed = set(report.placed.values())
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if k in placed}
    save_checkpoint({"model": state, "__source__": os.path.abspath(args.release)}, args.output)
    return {"output": args.output, "placed": len(report.placed), "ignored": sorted(report.ignored),
            "unplaced": report.unplaced, "missing_in_release": report.missing}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("open-clip", "write an open_clip checkpoint"),
                            ("openai", "write an OpenAI-layout ViT state dict"),
                            ("merge", "replace the image encoder inside another Detectron2 checkpoint"),
                            ("import-release", "convert an authors'-release checkpoint to this project's layout")):
        p = sub.add_parser(name, help=help_text)
        if name == "import-release":
            p.add_argument("--release", required=True, help="the release's checkpoint file")
            p.add_argument("--config-file", required=True, help="the PixelCLIP config matching it")
        else:
            p.add_argument("--weights", required=True, help="a PixelCLIP (or release) Detectron2 checkpoint")
            p.add_argument("--model-name", default="", help="open_clip architecture (default: the config's CLIP_MODEL_NAME)")
            p.add_argument("--config-file", default="", help="PixelCLIP config (for CLIP_MODEL_NAME)")
            p.add_argument("--teacher", action="store_true", help="export the EMA teacher's image encoder")
        p.add_argument("--output", required=True, help="file to write")
        if name == "openai":
            p.add_argument("--fp16", action="store_true", help="store fp16 tensors, as OpenAI's release")
        if name == "merge":
            p.add_argument("--target", required=True, help="the Detectron2 checkpoint to merge into")
            p.add_argument("--prefix", required=True,
                           help="where its CLIP lives: fcclip (backbone.clip_model.), zegformer "
                                "(sem_seg_head.predictor.clip_model.) or a literal key prefix")
        p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    setup_logger(name="pixelclip", abbrev_name="pixelclip")
    check_output_dir(os.path.dirname(os.path.abspath(args.output)))
    if args.command == "open-clip":
        report = export_open_clip(args.weights, _model_name(args), args.output, args.teacher)
    elif args.command == "openai":
        report = export_openai(args.weights, _model_name(args), args.output, args.teacher, args.fp16)
    elif args.command == "merge":
        name = args.model_name or (args.config_file and _model_name(args)) or None
        merged = merge_visual_weights(args.weights, args.target, args.prefix, args.output, name, args.teacher)
        report = {"output": merged.output, "prefix": merged.prefix, "replaced": merged.replaced}
    else:
        report = _import_release(args)
    text = json.dumps(report, indent=2)
    atomic_write(args.output + ".report.json", text + "\n")  # beside the output, for the record
    print(text)
    return 0


if __name__ == "__main__":
    run_tool("export_clip", main)
