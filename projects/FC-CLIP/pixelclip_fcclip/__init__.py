"""PixelCLIP's encoder inside FC-CLIP (Yu et al., NeurIPS 2023): ``import pixelclip_fcclip`` registers
the backbone ``PixelCLIPFCCLIPBackbone`` (BACKBONE_REGISTRY), which offers FC-CLIP's ``CLIP`` backbone
interface over a PixelCLIP-fine-tuned open_clip ConvNeXt.

The backbone reads FC-CLIP's own keys (``MODEL.FC_CLIP.CLIP_MODEL_NAME``, ``CLIP_PRETRAINED_WEIGHTS``,
``EMBED_DIM``), or PixelCLIP's (``MODEL.PIXELCLIP.*``) in a config without them; this project adds no
config key of its own.
"""
from .fcclip_backbone import VILD_TEMPLATES, PixelCLIPFCCLIPBackbone, mask_pooling

__all__ = ["PixelCLIPFCCLIPBackbone", "VILD_TEMPLATES", "mask_pooling"]
