"""Zero-shot mask classification with CLIP / PixelCLIP, a Detectron2 project over ``pixelclip``.

``import pixelclip_maskcls`` registers the meta-architecture ``ZeroShotMaskClassifier``
(META_ARCH_REGISTRY) and the test-time mapper ``mask_classification`` (``pixelclip.data.MAPPER_REGISTRY``,
selected by ``INPUT.TEST_MAPPER_NAME``); :func:`add_mask_classification_config` adds the project's keys.
"""
from .config import add_mask_classification_config, get_mask_classification_cfg
from .mask_classification_dataset_mapper import MaskClassificationMapper
from .zero_shot_mask_classifier import ZeroShotMaskClassifier

__all__ = ["add_mask_classification_config", "get_mask_classification_cfg", "MaskClassificationMapper",
           "ZeroShotMaskClassifier"]
