#!/usr/bin/env python
"""Open-vocabulary segmentation of your images: colour overlays with a legend and raw label PNGs.

    python tools/demo.py --config-file configs/pixelclip_vitb.yaml --input photos/ --output out/ \
        --vocabulary "sky,person,dog,grass" MODEL.WEIGHTS model_final.pth

--vocabulary: "a,b,c" (";" separates classes when names carry ", " synonyms), a class file
(.txt one name a line, or .json list), a packaged vocabulary (ade150, pc59, ...) or a dataset name.
Runs on CPU (MODEL.DEVICE cpu) or GPU.
"""
import argparse
import logging
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import tqdm  # noqa: E402
from PIL import Image  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

import pixelclip  # noqa: E402,F401
from pixelclip import get_pixelclip_cfg  # noqa: E402
from pixelclip.clip.build import ClipWeightsError  # noqa: E402
from pixelclip.data.test_mapper import SemanticTestMapper  # noqa: E402
from pixelclip.data.vocabulary import load_vocabulary  # noqa: E402
from pixelclip.visualization import class_colors, overlay, save_label_png, save_panels  # noqa: E402

MAX_FULL_LEGEND = 40  # longer vocabularies: the legend lists only the classes present in the image
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(inputs):
    files = []
    for item in inputs:
        if os.path.isdir(item):
            files += sorted(f for f in glob.glob(os.path.join(item, "**", "*"), recursive=True)
                            if f.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(item):
            files.append(item)
        else:
            files += sorted(glob.glob(item))
    if not files:
        raise SystemExit(f"[demo] no images found in {inputs}")
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--input", nargs="+", required=True, help="images, folders or glob patterns")
    parser.add_argument("--output", required=True, help="folder for <name>_overlay.png and <name>_labels.png")
    parser.add_argument("--vocabulary", required=True)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args()
    setup_logger(name="pixelclip")

    cfg = get_pixelclip_cfg(args.config_file, args.opts)
    cfg.DATASETS.TEST = ()
    cfg.freeze()
    vocabulary = load_vocabulary(args.vocabulary)
    try:
        model = build_model(cfg).eval()
    except ClipWeightsError as e:
        sys.exit(f"[demo] {e}")
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    model.set_vocabulary(vocabulary)
    mapper = SemanticTestMapper(cfg)
    colors = class_colors(len(vocabulary))
    os.makedirs(args.output, exist_ok=True)
    for path in tqdm.tqdm(list_images(args.input), desc="demo"):
        try:
            record = mapper({"file_name": path})
        except ValueError as e:  # unreadable image: report and go on with the others
            logging.getLogger("pixelclip").warning("skipped: %s", e)
            continue
        with torch.no_grad():
            logits = model([record])[0]["sem_seg"]
        labels = logits.argmax(0).cpu().numpy()
        image = np.asarray(Image.open(path).convert("RGB"))
        stem = os.path.splitext(os.path.basename(path))[0]
        save_label_png(os.path.join(args.output, f"{stem}_labels.png"), labels)
        save_panels(os.path.join(args.output, f"{stem}_overlay.png"), [image, overlay(image, labels, colors)],
                    ["image", "PixelCLIP"], vocabulary, colors,
                    present=None if len(vocabulary) <= MAX_FULL_LEGEND else np.unique(labels).tolist())
    print(f"[demo] wrote overlays and label maps of {len(vocabulary)} classes to {args.output}")


if __name__ == "__main__":
    main()
