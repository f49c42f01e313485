#!/usr/bin/env python
"""Open-vocabulary segmentation of your images: colour overlays with a legend and raw label PNGs.

    python tools/demo.py --config-file configs/pixelclip_vitb.yaml --input photos/ --output out/ \
        --vocabulary "sky,person,dog,grass" MODEL.WEIGHTS model_final.pth

--vocabulary: "a,b,c" (";" separates classes when names carry ", " synonyms), a class file
(.txt one name a line, or .json list), a packaged vocabulary (ade150, pc59, ...) or a dataset name.
Config overrides come last (KEY VALUE ...) or after --opts, as in Detectron2's demo. Runs on the GPU
when there is one, else on the CPU (a MODEL.DEVICE cuda of the config falls back to cpu).
Outputs keep the inputs' relative paths: photos/a/x.jpg and photos/b/x.jpg give out/a/x_overlay.png
and out/b/x_overlay.png. Mistakes end with one line, "[demo] <what> — <what to do>" (--debug: traceback).
"""
import argparse
import glob
import logging
import os
import sys
from typing import List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import tqdm  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

import pixelclip  # noqa: E402,F401
from pixelclip.checkpoint import build_checkpointer  # noqa: E402
from pixelclip.data.image_io import read_image  # noqa: E402
from pixelclip.data.mappers import SemanticTestMapper  # noqa: E402
from pixelclip.data.vocabulary import load_vocabulary  # noqa: E402
from pixelclip.errors import DatasetError  # noqa: E402
from pixelclip.preflight import check_model_weights, check_output_dir  # noqa: E402
from pixelclip.utils.cli import load_config, run_tool  # noqa: E402
from pixelclip.utils.files import IMAGE_EXTENSIONS  # noqa: E402
from pixelclip.visualization import class_colors, model_title, overlay, save_label_png, save_panels  # noqa: E402

logger = logging.getLogger("pixelclip.tools.demo")

MAX_FULL_LEGEND = 40  # longer vocabularies: the legend lists only the classes present in the image


def list_images(inputs: Sequence[str]) -> List[Tuple[str, str]]:
    """``(path, relative name)`` of every image given as a file, a folder (recursively) or a glob
    pattern; relative names are taken from the inputs' common folder, so they are unique."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            files += sorted(f for f in glob.glob(os.path.join(item, "**", "*"), recursive=True)
                            if f.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(item):
            files.append(item)
        else:
            files += sorted(glob.glob(item))
    files = list(dict.fromkeys(os.path.abspath(f) for f in files))
    if not files:
        raise DatasetError(f"no images found in {list(inputs)}",
                           f"give image files ({', '.join(IMAGE_EXTENSIONS)}), folders or glob patterns to --input")
    root = os.path.commonpath([os.path.dirname(f) for f in files])
    return [(f, os.path.relpath(f, root)) for f in files]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--input", nargs="+", required=True, help="images, folders or glob patterns")
    parser.add_argument("--output", required=True,
                        help="folder for <name>_overlay.png and <name>_labels.png (the inputs' relative paths)")
    parser.add_argument("--vocabulary", required=True)
    parser.add_argument("--opts", dest="opts_flag", nargs=argparse.REMAINDER, default=[],
                        help="config overrides KEY VALUE ... (Detectron2's demo style)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    return parser


def main():
    args = get_parser().parse_args()
    setup_logger(name="pixelclip", abbrev_name="pixelclip")
    cfg = load_config(args.config_file, list(args.opts_flag) + list(args.opts), freeze=False)
    if str(cfg.MODEL.DEVICE).startswith("cuda") and not torch.cuda.is_available():
        logger.info("no CUDA device: running on the CPU (MODEL.DEVICE cpu)")
        cfg.MODEL.DEVICE = "cpu"
    cfg.DATASETS.TEST = ()
    cfg.freeze()
    check_output_dir(args.output)
    check_model_weights(cfg)
    vocabulary = load_vocabulary(args.vocabulary)
    images = list_images(args.input)
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        build_checkpointer(cfg, model).load(cfg.MODEL.WEIGHTS)
    model.set_vocabulary(vocabulary)
    mapper = SemanticTestMapper(cfg)
    colors = class_colors(len(vocabulary))
    skipped = 0
    for path, rel in tqdm.tqdm(images, desc="demo"):
        try:
            record = mapper({"file_name": path})
        except ValueError as e:  # unreadable image: report and go on with the others
            logger.warning("skipped: %s", e)
            skipped += 1
            continue
        with torch.no_grad():
            logits = model([record])[0]["sem_seg"]
        labels = logits.argmax(0).cpu().numpy()
        image = read_image(path, "RGB")  # as the model saw it: EXIF-rotated, 16-bit scaled to 8 bits
        stem = os.path.join(args.output, os.path.splitext(rel)[0])
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        save_label_png(f"{stem}_labels.png", labels)
        save_panels(f"{stem}_overlay.png", [image, overlay(image, labels, colors)],
                    ["image", model_title(cfg)], vocabulary, colors,
                    present=None if len(vocabulary) <= MAX_FULL_LEGEND else np.unique(labels).tolist())
    print(f"[demo] wrote overlays and label maps of {len(images) - skipped} images ({len(vocabulary)} classes) "
          f"to {args.output}" + (f"; {skipped} unreadable images skipped (see above)" if skipped else ""))


if __name__ == "__main__":
    run_tool("demo", main)
