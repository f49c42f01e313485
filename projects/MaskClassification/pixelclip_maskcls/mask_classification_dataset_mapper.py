"""Test-time mapper for zero-shot mask classification: the image plus class-agnostic masks.

Masks come from the dataset's ground truth (the oracle protocol: one mask per class present, or
per connected component of a class; the labels themselves are withheld from the model) or from
SA-1B-style mask files (``pixelclip.data.mask_io``, e.g. written by ``tools/generate_masks.py``).
The image is resized like ``SemanticTestMapper``; the masks stay at the image's original
resolution (``height``×``width``, where predictions are evaluated) and cover the same extent as the
resized image, so the model maps one onto the other by normalised coordinates.

Registered in PixelCLIP's mapper registry (``pixelclip.data.MAPPER_REGISTRY``) as
``mask_classification``; ``INPUT.TEST_MAPPER_NAME`` selects it (``pixelclip.data.build_test_mapper``).
"""
import logging
import os
from typing import Dict, Optional

import cv2
import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog

from pixelclip.data.mask_io import decode_masks, read_mask_file
from pixelclip.data.mappers import SemanticTestMapper
from pixelclip.data.registry import register_mapper

from .config import check_choice

logger = logging.getLogger(__name__)


def read_labels(path: str) -> np.ndarray:
    """A single-channel class-id map (8- or 16-bit PNG/TIFF) as int64 H×W, numpy-2-safe."""
    from pixelclip.data.label_io import read_label_file

    return read_label_file(path, dtype=np.int64)


def masks_from_labels(labels: np.ndarray, ignore_label: int, num_classes: Optional[int] = None,
                      mode: str = "class") -> np.ndarray:
    """Class-agnostic masks of a label map: N×H×W bool (the classes are not returned).

    Arguments:
        labels: H×W class ids.
        ignore_label: the id that belongs to no mask (also ids ≥ ``num_classes`` when given).
        mode: ``class``: one mask per class present; ``component``: one per 8-connected component
            of each class.
    """
    check_choice("GT_MASK_MODE", mode)
    valid = labels != ignore_label
    if num_classes is not None:
        valid &= (labels >= 0) & (labels < num_classes)
    masks = []
    for c in np.unique(labels[valid]):
        region = labels == c
        if mode == "class":
            masks.append(region)
            continue
        count, comp = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
        masks.extend(comp == j for j in range(1, count))
    if not masks:
        return np.zeros((0,) + labels.shape, dtype=bool)
    return np.stack(masks)


def select_masks(masks: np.ndarray, min_area: int = 1, max_masks: int = 0) -> np.ndarray:
    """Drop masks below ``min_area`` pixels, keep the ``max_masks`` largest (0 = all), largest first."""
    if masks.shape[0] == 0:
        return masks
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1)
    order = np.argsort(-areas, kind="stable")
    order = order[areas[order] >= max(min_area, 1)]
    if max_masks > 0:
        order = order[:max_masks]
    return masks[order]


def _resize_masks(masks: np.ndarray, size) -> np.ndarray:
    """N×h×w bool -> N×H×W bool (nearest)."""
    h, w = size
    if masks.shape[0] == 0:
        return np.zeros((0, h, w), dtype=bool)
    return np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in masks])


class MaskClassificationMapper(SemanticTestMapper):
    """Dataset dict -> ``{"image": 3×H'×W' uint8 (short side MIN_SIZE_TEST), "height", "width",
    "file_name", "masks": N×height×width bool}`` (no ``masks`` for ``MASK_SOURCE model``)."""

    @configurable
    def __init__(
        self,
        is_train: bool = False,
        *,
        min_size: int = 640,
        max_size: int = 2560,
        image_format: str = "RGB",
        mask_source: str = "gt",
        gt_mask_mode: str = "class",
        mask_dir: str = "",
        ignore_label: int = 255,
        num_classes: Optional[int] = None,
        min_area: int = 1,
        max_masks: int = 0,
    ):
        if is_train:
            raise ValueError("MaskClassificationMapper is a test-time mapper (INPUT.TEST_MAPPER_NAME), not a training one")
        check_choice("MASK_SOURCE", mask_source)
        check_choice("GT_MASK_MODE", gt_mask_mode)
        if mask_source == "json" and not os.path.isdir(mask_dir):
            raise FileNotFoundError(f"mask folder '{mask_dir}' does not exist "
                                    "(MODEL.MASK_CLASSIFIER.MASK_DIR, MASK_SOURCE json)")
        super().__init__(min_size=min_size, max_size=max_size, image_format=image_format)
        self.mask_source = mask_source
        self.gt_mask_mode = gt_mask_mode
        self.mask_dir = mask_dir
        self.ignore_label = ignore_label
        self.num_classes = num_classes
        self.min_area = min_area
        self.max_masks = max_masks

    @classmethod
    def from_config(cls, cfg, is_train: bool = False):
        m = cfg.MODEL.MASK_CLASSIFIER
        ignore_label, num_classes = 255, None
        if cfg.DATASETS.TEST:  # the trainer builds one loader per dataset with DATASETS.TEST = (name,)
            meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
            ignore_label = meta.get("ignore_label", 255)
            classes = meta.get("stuff_classes", None)
            num_classes = len(classes) if classes else None
        return {
            "is_train": is_train,
            "min_size": cfg.INPUT.MIN_SIZE_TEST,
            "max_size": cfg.INPUT.MAX_SIZE_TEST,
            "image_format": cfg.INPUT.FORMAT,
            "mask_source": m.MASK_SOURCE,
            "gt_mask_mode": m.GT_MASK_MODE,
            "mask_dir": m.MASK_DIR,
            "ignore_label": ignore_label,
            "num_classes": num_classes,
            "min_area": m.MIN_MASK_AREA,
            "max_masks": m.MAX_MASKS,
        }

    def _gt_masks(self, record: Dict) -> np.ndarray:
        path = record.get("sem_seg_file_name")
        if not path:
            raise KeyError(f"dataset dict of {record['file_name']} has no sem_seg_file_name: MASK_SOURCE gt needs labels")
        labels = read_labels(path)
        if labels.shape != (record["height"], record["width"]):
            raise ValueError(f"label file {path} is {labels.shape[0]}×{labels.shape[1]} but its image is "
                             f"{record['height']}×{record['width']}")
        return masks_from_labels(labels, self.ignore_label, self.num_classes, self.gt_mask_mode)

    def _json_masks(self, record: Dict) -> np.ndarray:
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        path = os.path.join(self.mask_dir, stem + ".json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no mask file {path} for image {record['file_name']} "
                                    f"(MODEL.MASK_CLASSIFIER.MASK_DIR = {self.mask_dir})")
        data = read_mask_file(path, allow_empty=True)
        masks = decode_masks(data, path=path)
        size = (record["height"], record["width"])
        if masks.shape[1:] != size:  # files written at another resolution (e.g. pre-resized images)
            masks = _resize_masks(masks, size)
        return masks

    def __call__(self, dataset_dict: Dict) -> Dict:
        record = super().__call__(dataset_dict)  # image read and resized; the labels are withheld
        if self.mask_source != "model":
            source = dict(dataset_dict, height=record["height"], width=record["width"])
            masks = self._gt_masks(source) if self.mask_source == "gt" else self._json_masks(source)
            masks = select_masks(masks, self.min_area, self.max_masks)
            record["masks"] = torch.from_numpy(np.ascontiguousarray(masks))
        return record


register_mapper("mask_classification")(MaskClassificationMapper)  # INPUT.TEST_MAPPER_NAME "mask_classification"

