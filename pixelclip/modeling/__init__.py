"""PixelCLIP model components; importing registers the backbone and meta-architectures."""
from .backbone import PixelCLIPBackbone
from .pixelclip import PixelCLIP
from .zero_shot_mask_classifier import ZeroShotMaskClassifier
from .fcclip_backbone import PixelCLIPFCCLIPBackbone

__all__ = ["PixelCLIPBackbone", "PixelCLIP", "ZeroShotMaskClassifier", "PixelCLIPFCCLIPBackbone"]
