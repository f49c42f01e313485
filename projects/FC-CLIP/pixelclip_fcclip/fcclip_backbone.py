"""An FC-CLIP-compatible frozen CLIP backbone over a (PixelCLIP-fine-tuned) open_clip ConvNeXt.

FC-CLIP (Yu et al., NeurIPS 2023) and other Mask2Former-style open-vocabulary models use one frozen
CLIP ConvNeXt both as the mask network's feature pyramid and as the out-of-vocabulary classifier.
This backbone offers the interface FC-CLIP's ``CLIP`` backbone offers, built from our CLIP builder,
so a PixelCLIP ConvNeXt-B/L is one config line there (with ``import pixelclip_fcclip`` in FC-CLIP's
``train_net.py``, this project's folder on ``sys.path``)::

    MODEL.BACKBONE.NAME: "PixelCLIPFCCLIPBackbone"
    MODEL.FC_CLIP.CLIP_MODEL_NAME: "convnext_large_d_320"
    MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS: "output/pixelclip_convnext_l/model_final.pth"

``CLIP_PRETRAINED_WEIGHTS`` may be an open_clip tag, an open_clip checkpoint file (e.g. written by
``tools/export_clip.py``), or a PixelCLIP / authors'-release Detectron2 checkpoint. Without
``MODEL.FC_CLIP`` keys the ``MODEL.PIXELCLIP.CLIP_MODEL_NAME`` / ``CLIP_PRETRAINED`` keys are read.
"""
import logging
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import BACKBONE_REGISTRY, Backbone, ShapeSpec
from torch import nn

from pixelclip.clip.build import freeze, is_convnext
from pixelclip.clip.dense import convnext_head_per_pixel
from pixelclip.clip.text import TextEncoder, VocabularyClassifier
from pixelclip.modeling.pooling import positive_mask_pool
from pixelclip.utils.modules import hold_reference

logger = logging.getLogger(__name__)

# The 14 ViLD-style templates FC-CLIP ensembles (factual data from FC-CLIP's fcclip.py).
VILD_TEMPLATES = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


def mask_pooling(features: torch.Tensor, masks: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """FC-CLIP's ``MaskPooling``: B×C×H×W features, B×Q×h×w mask logits (> 0 is inside) -> B×Q×C
    (:func:`pixelclip.modeling.pooling.positive_mask_pool`)."""
    return positive_mask_pool(features, masks, eps)


@BACKBONE_REGISTRY.register()
class PixelCLIPFCCLIPBackbone(Backbone):
    """Frozen open_clip ConvNeXt with FC-CLIP's backbone interface.

    ``forward`` / ``extract_features``: B×3×H×W CLIP-normalised (H, W divisible by 32) ->
    ``stem`` (stride 4), ``res2``..``res5`` (strides 4, 8, 16, 32; the trunk's stages),
    ``clip_vis_dense`` (the last stage after ``norm_pre``, what FC-CLIP mask-pools) and
    ``clip_dense`` (PixelCLIP's dense map in CLIP space, stride 32). ``output_shape()`` also lists
    ``clip_embedding`` (stride -1, ``dim_latent`` channels), as FC-CLIP's does.
    """

    @configurable
    def __init__(self, *, clip_model: nn.Module, tokenizer, model_name: str,
                 templates: Sequence[str] = VILD_TEMPLATES):
        super().__init__()
        if not is_convnext(clip_model.visual):
            raise TypeError(f"PixelCLIPFCCLIPBackbone needs an open_clip ConvNeXt CLIP (FC-CLIP's setting); "
                            f"'{model_name}' has a {type(clip_model.visual).__name__} image tower")
        self.clip_model = freeze(clip_model).eval()
        self.text_tokenizer = tokenizer
        self.model_name = model_name  # FC-CLIP branches on "convnext" in model_name
        # a reference, not a submodule: the CLIP model appears once in the state dict (backbone.clip_model.*)
        hold_reference(self, "text_encoder", TextEncoder(clip_model, tokenizer))
        self.vocabulary_classifier = VocabularyClassifier(self.text_encoder, templates)
        trunk = clip_model.visual.trunk
        info = trunk.feature_info
        stem_channels = next(m.out_channels for m in trunk.stem.modules() if isinstance(m, nn.Conv2d))
        self._out_feature_strides = {"stem": 4}
        self._out_feature_channels = {"stem": int(stem_channels)}
        for i, stage in enumerate(info[:4]):
            self._out_feature_strides[f"res{i + 2}"] = int(stage["reduction"])
            self._out_feature_channels[f"res{i + 2}"] = int(stage["num_chs"])
        self._out_feature_strides.update(clip_vis_dense=self._out_feature_strides["res5"],
                                         clip_dense=self._out_feature_strides["res5"], clip_embedding=-1)
        self._out_feature_channels.update(clip_vis_dense=self._out_feature_channels["res5"],
                                          clip_dense=self.dim_latent, clip_embedding=self.dim_latent)
        self._out_features = list(self._out_feature_strides)

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        from pixelclip.export import build_clip_from_weights

        if "FC_CLIP" in cfg.MODEL:
            name, weights = cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME, cfg.MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS
        else:
            name, weights = cfg.MODEL.PIXELCLIP.CLIP_MODEL_NAME, cfg.MODEL.PIXELCLIP.CLIP_PRETRAINED
        clip_model, tokenizer = build_clip_from_weights(name, weights)
        dim = int(clip_model.text_projection.shape[-1])
        if "FC_CLIP" in cfg.MODEL and cfg.MODEL.FC_CLIP.get("EMBED_DIM", dim) != dim:
            raise ValueError(f"MODEL.FC_CLIP.EMBED_DIM is {cfg.MODEL.FC_CLIP.EMBED_DIM} but '{name}' embeds in {dim} "
                             "dimensions; set EMBED_DIM to it")
        return {"clip_model": clip_model, "tokenizer": tokenizer, "model_name": name}

    # ------------------------------------------------------------------ D2 Backbone
    @property
    def dim_latent(self) -> int:
        """CLIP embedding dimension (the text projection's output)."""
        return int(self.clip_model.text_projection.shape[-1])

    @property
    def size_divisibility(self) -> int:
        return 32

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
                for name in self._out_features}

    def train(self, mode: bool = True):
        super().train(mode)
        self.clip_model.eval()  # frozen, as in FC-CLIP: BN/dropout stay in inference mode
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.extract_features(x)

    # ------------------------------------------------------------------ FC-CLIP interface
    def extract_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """B×3×H×W -> ``stem``, ``res2``..``res5``, ``clip_vis_dense`` (B×C5×H/32×W/32) and
        ``clip_dense`` (B×dim_latent×H/32×W/32)."""
        trunk = self.clip_model.visual.trunk
        out = {}
        x = trunk.stem(x)
        out["stem"] = x.contiguous()
        for i in range(4):
            x = trunk.stages[i](x)
            out[f"res{i + 2}"] = x.contiguous()
        x = trunk.norm_pre(x)
        out["clip_vis_dense"] = x.contiguous()
        # PixelCLIP's dense features: the head's norm and projection on every position, no pooling
        out["clip_dense"] = convnext_head_per_pixel(self.clip_model.visual, x)
        return out

    def mask_pool(self, features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """B×C×H×W features, B×Q×h×w masks -> B×Q×C (FC-CLIP's ``MaskPooling``)."""
        return mask_pooling(features, masks)

    def visual_prediction_forward(self, x: torch.Tensor, masks: torch.Tensor = None) -> torch.Tensor:
        """Mask-pooled trunk features B×Q×C5 -> CLIP embeddings B×Q×dim_latent (the head's norm and
        projection on each pooled vector; ``masks`` is unused for ConvNeXt, as in FC-CLIP)."""
        batch, queries, channels = x.shape
        # one position per query: FC-CLIP's pooled head (trunk.head, then visual.head), for every head kind
        y = convnext_head_per_pixel(self.clip_model.visual, x.reshape(batch * queries, channels, 1, 1))
        return y.view(batch, queries, y.shape[1])

    def tokenize_text(self, text: List[str]) -> torch.Tensor:
        """Texts -> N×L token ids (CPU), at the model's context length."""
        return self.text_tokenizer(list(text), context_length=self.text_encoder.context_length)

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """N×L token ids -> N×dim_latent text features (open_clip's ``encode_text``)."""
        feats = self.text_encoder(text.to(self.text_encoder.device))
        return F.normalize(feats, dim=-1) if normalize else feats

    def get_text_classifier(self, text_list: List[str], device) -> torch.Tensor:
        """Already-templated texts -> N×dim_latent unit-norm embeddings (FC-CLIP's call; it then
        averages over its templates and renormalises, which unit rows leave unchanged)."""
        with torch.no_grad():
            tokens = self.tokenize_text(text_list).to(device)
            return self.encode_text(tokens, normalize=True)

    def get_vocabulary_classifier(self, class_names: Sequence[str], device=None) -> torch.Tensor:
        """Class names (``"a, b"`` = synonyms) -> K×dim_latent unit-norm embeddings, ensembled over
        this backbone's templates (FC-CLIP's ViLD set by default); cached per vocabulary."""
        classifier = self.vocabulary_classifier(list(class_names))
        return classifier.to(device) if device is not None else classifier
