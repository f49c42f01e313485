"""PixelCLIP model components; importing registers the backbone and the meta-architecture."""
from .backbone import PixelCLIPBackbone
from .pixelclip import PixelCLIP

__all__ = ["PixelCLIPBackbone", "PixelCLIP"]
