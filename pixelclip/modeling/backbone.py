"""PixelCLIPBackbone: a Detectron2 backbone over an open_clip model's image tower."""
import logging
from typing import Dict

import torch
from detectron2.config import configurable
from detectron2.modeling import BACKBONE_REGISTRY, Backbone, ShapeSpec
from torch import nn

from ..clip.build import apply_finetune_policy, build_clip_model, freeze
from ..clip.dense import check_tower_dense_mode, dense_features, embed_dim, feature_stride
from ..clip.dense_modes import unused_parameter_names

logger = logging.getLogger(__name__)


@BACKBONE_REGISTRY.register()
class PixelCLIPBackbone(Backbone):
    """Dense CLIP features of CLIP-normalised images.

    Owns the whole open_clip model (``clip_model``: image tower trained by the ``CLIP_FINETUNE``
    policy, text tower frozen), so its state dict is an open_clip checkpoint under ``clip_model.``.
    Output: ``{"clip_dense": B×C×h×w}`` with C the CLIP embedding dim and h, w = H/stride, W/stride.
    ``dense_mode`` (``MODEL.PIXELCLIP.DENSE_MODE``) selects the ViT's last block (pixelclip/clip/dense_modes.py);
    parameters the mode never uses stay frozen whatever ``finetune`` says (ClearCLIP / NACLIP: the last
    block's feed-forward half). ``gradient_checkpointing`` (``MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING``):
    the image tower's blocks recompute their activations in the backward pass (less memory, same gradients).
    """

    @configurable
    def __init__(self, *, clip_model: nn.Module, tokenizer, finetune: str = "attention", dense_mode: str = "value",
                 gradient_checkpointing: bool = False):
        super().__init__()
        self.dense_mode = check_tower_dense_mode(clip_model.visual, dense_mode)
        self.clip_model = clip_model
        self.tokenizer = tokenizer
        self.gradient_checkpointing = gradient_checkpointing
        freeze(self.clip_model)
        trainable = apply_finetune_policy(self.clip_model.visual, finetune)
        unused = set(unused_parameter_names(self.clip_model.visual, self.dense_mode)).intersection(trainable)
        if unused:
            visual_params = dict(self.clip_model.visual.named_parameters())
            for name in unused:
                visual_params[name].requires_grad_(False)
            logger.info("DENSE_MODE %s does not use %d parameter tensors of the last ViT block (its feed-forward "
                        "half): frozen although CLIP_FINETUNE is %s", self.dense_mode, len(unused), finetune)
        self.trainable_names = [n for n in trainable if n not in unused]
        self._stride = feature_stride(self.clip_model.visual)
        self._channels = embed_dim(self.clip_model.visual)

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        clip_model, tokenizer = build_clip_model(cfg.MODEL.PIXELCLIP.CLIP_MODEL_NAME, cfg.MODEL.PIXELCLIP.CLIP_PRETRAINED)
        return {"clip_model": clip_model, "tokenizer": tokenizer, "finetune": cfg.MODEL.PIXELCLIP.CLIP_FINETUNE,
                "dense_mode": cfg.MODEL.PIXELCLIP.DENSE_MODE,
                "gradient_checkpointing": cfg.MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING}

    @property
    def visual(self) -> nn.Module:
        return self.clip_model.visual

    @property
    def size_divisibility(self) -> int:
        return self._stride

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {"clip_dense": ShapeSpec(channels=self._channels, stride=self._stride)}

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images: B×3×H×W CLIP-normalised -> {"clip_dense": B×C×(H/stride)×(W/stride)}."""
        return {"clip_dense": dense_features(self.clip_model.visual, images, self.dense_mode,
                                             checkpoint=self.gradient_checkpointing)}

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Global CLIP image embedding (open_clip's ``encode_image``), B×3×H×W -> B×C."""
        return self.clip_model.encode_image(images)
