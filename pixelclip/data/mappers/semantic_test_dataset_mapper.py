"""The inference mapper (registered ``pixelclip_semantic_test``): read an image and resize its short side;
ground truth stays on disk for the evaluator."""
import copy
import logging
from typing import Dict

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T

from ...errors import EvalImageError
from ..image_io import read_image
from ..registry import register_mapper

logger = logging.getLogger(__name__)


@register_mapper("pixelclip_semantic_test")
class SemanticTestMapper:
    """Dataset dict -> ``{"image": 3×H×W uint8 (short side MIN_SIZE_TEST), "height", "width", "file_name"}``."""

    @configurable
    def __init__(self, *, min_size: int = 640, max_size: int = 2560, image_format: str = "RGB"):
        self.resize = T.ResizeShortestEdge(min_size, max_size)
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg, is_train: bool = False):
        if is_train:
            raise ValueError("SemanticTestMapper is a test-time mapper, not a training one (INPUT.DATASET_MAPPER_NAME)")
        return {"min_size": cfg.INPUT.MIN_SIZE_TEST, "max_size": cfg.INPUT.MAX_SIZE_TEST, "image_format": cfg.INPUT.FORMAT}

    def __call__(self, dataset_dict: Dict) -> Dict:
        record = copy.deepcopy(dataset_dict)
        path = record["file_name"]
        try:
            image = read_image(path, format=self.image_format)  # 16-bit grayscale scaled to 8 bits, not clipped
        except Exception as e:  # unreadable or truncated file
            label = record.get("sem_seg_file_name")
            remove = f" together with its label file {label}" if label else ""
            raise EvalImageError(
                f"cannot decode test image {path} ({type(e).__name__}: {' '.join(str(e).split())})",
                f"replace it with an intact copy (re-extract the download), or remove it{remove}") from None
        record.setdefault("height", image.shape[0])
        record.setdefault("width", image.shape[1])
        image = self.resize.get_transform(image).apply_image(image)
        record["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        record.pop("sem_seg_file_name", None)
        return record
