"""PixelCLIP model components; importing registers the backbone and meta-architectures."""
from .backbone import PixelCLIPBackbone
from .pixelclip import PixelCLIP

__all__ = ["PixelCLIPBackbone", "PixelCLIP"]
