"""META_ARCH "ZeroShotMaskClassifier": name class-agnostic masks with CLIP or PixelCLIP.

The encoder of PixelCLIP drops into open-vocabulary mask-classification models: a mask proposal
network says *where*, CLIP says *what*. This meta-architecture is that second half on its own.
Masks come from the inputs (``"masks"``: ground-truth segments or SA-1B-style files, made by
``mask_classification_dataset_mapper.py``) or from any Detectron2 model's output
(``MASK_SOURCE model``). Pooling and scoring are the core's ``pixelclip/modeling/pooling.py`` and ``scoring.py``;
crops, the ensemble and the painting of masks into outputs are in ``inference.py``.

Its state dict holds the CLIP model under ``backbone.clip_model.`` like ``PixelCLIP``, so a
PixelCLIP checkpoint loads with ``MODEL.WEIGHTS`` (teacher, prompts and decoder are not used), and
plain CLIP is ``MODEL.WEIGHTS ""`` with ``MODEL.PIXELCLIP.CLIP_PRETRAINED`` set.
"""
import importlib
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from pixelclip.clip.text import TextEncoder, VocabularyClassifier, get_templates
from pixelclip.data.vocabulary import default_vocabulary
from pixelclip.modeling.pooling import dense_mask_embeddings
from pixelclip.modeling.preprocess import ClipPreprocessor
from pixelclip.modeling.scoring import cosine_logits
from pixelclip.utils.modules import hold_reference

from .config import check_choice
from .inference import (
    crop_masked_regions,
    geometric_ensemble,
    masks_from_output,
    panoptic_from_masks,
    semantic_scores,
)

logger = logging.getLogger(__name__)

# A scorer replacing CLIP (e.g. an oracle in tests): (input dict, N×H×W bool masks, vocabulary) -> N×K probabilities.
ScoreFn = Callable[[Dict, torch.Tensor, Sequence[str]], torch.Tensor]


def _synonyms(name: str) -> set:
    return {s.strip().lower() for s in name.replace(", ", ",").split(",") if s.strip()}


def seen_class_mask(vocabulary: Sequence[str], seen_classes: Optional[Sequence[str]]) -> torch.Tensor:
    """K bool: the vocabulary classes that share a synonym with ``seen_classes`` (FC-CLIP's
    ``category_overlapping_mask``). None or empty: no class is seen."""
    if not seen_classes:
        return torch.zeros(len(vocabulary), dtype=torch.bool)
    seen = set().union(*(_synonyms(n) for n in seen_classes))
    return torch.tensor([bool(_synonyms(n) & seen) for n in vocabulary], dtype=torch.bool)


def build_proposal_model(config_file: str, weights: str, config_funcs: Sequence[str], device: str) -> Tuple[nn.Module, str]:
    """Build and load a Detectron2 model from its own config, for ``MASK_SOURCE model``.

    Arguments:
        config_file: the proposal model's YAML.
        weights: its checkpoint ("" keeps the initialisation).
        config_funcs: dotted paths of functions adding the framework's keys before the YAML is
            merged, e.g. ``["mask2former.add_maskformer2_config"]``.
        device: where it runs.
    Returns:
        the model in eval mode and its ``INPUT.FORMAT``.
    """
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"proposal model config not found: {config_file} "
                                "(MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.CONFIG_FILE)")
    cfg = get_cfg()
    for path in config_funcs:
        module_name, _, fn_name = path.rpartition(".")
        try:
            fn = getattr(importlib.import_module(module_name), fn_name)
        except (ImportError, AttributeError, ValueError) as e:
            raise ImportError(f"cannot import '{path}' (MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.CONFIG_FUNCS): {e}") from e
        fn(cfg)
    cfg.merge_from_file(config_file)
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    model = build_model(cfg)
    if weights:
        DetectionCheckpointer(model).load(weights)
    model.eval()
    logger.info("Mask proposals from %s (%s), weights %s", cfg.MODEL.META_ARCHITECTURE, config_file, weights or "none")
    return model, cfg.INPUT.FORMAT


@META_ARCH_REGISTRY.register()
class ZeroShotMaskClassifier(nn.Module):
    """Classify class-agnostic masks against a vocabulary with CLIP's image and text encoders.

    Inference only. Input: ``[{"image": 3×H×W uint8, "height", "width", "masks": N×height×width
    bool}]`` (``masks`` absent when a proposal model supplies them). Output per image:
    ``{"sem_seg": K×height×width, "mask_probs": N×K}`` and, with ``panoptic_on``,
    ``"panoptic_seg": (height×width int32, segments_info)``.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        clip_resolution: Tuple[int, int] = (320, 320),
        mode: str = "dense",
        templates: Sequence[str] = ("A photo of a {} in the scene.",),
        pool_resolution: int = 64,
        crop_style: str = "cropmask",
        crop_size: int = 0,
        crop_batch: int = 32,
        fill_uncovered: bool = True,
        panoptic_on: bool = False,
        overlap_threshold: float = 0.8,
        thing_classes: Optional[Sequence[int]] = None,
        alpha: float = 0.4,
        beta: float = 0.8,
        seen_classes: Optional[Sequence[str]] = None,
        proposal_model: Optional[nn.Module] = None,
        proposal_format: str = "RGB",
        image_format: str = "RGB",
        proposal_mask_threshold: float = 0.5,
        proposal_score_threshold: float = 0.0,
        use_proposal_scores: bool = True,
        vocabulary: Optional[Sequence[str]] = None,
        score_fn: Optional[ScoreFn] = None,
    ):
        """
        Arguments:
            backbone: a ``PixelCLIPBackbone`` (owns the open_clip model as ``clip_model``).
            pixel_mean, pixel_std: CLIP's normalisation in 0-255 units.
            clip_resolution: (H, W) the image is resized to for dense features.
            mode: ``dense`` (mask-pooled dense features) or ``crop`` (masked crops, global embedding).
            templates: text templates ensembled for the class embeddings.
            pool_resolution: dense mode: side of the grid features are resized to before pooling.
            crop_style, crop_size, crop_batch: crop mode: see ``crop_masked_regions``; size 0 = the
                image tower's native input size.
            fill_uncovered: pixels no mask covers take the dense per-pixel class probabilities.
            panoptic_on, overlap_threshold, thing_classes: also return panoptic segments.
            alpha, beta, seen_classes: FC-CLIP geometric ensemble with in-vocabulary scores.
            proposal_model, proposal_format: a Detectron2 model whose outputs give the masks, and
                the channel order it expects (``image_format`` is the inputs').
            proposal_mask_threshold, proposal_score_threshold: binarisation / filtering of proposals.
            use_proposal_scores: ensemble the proposal model's class scores (when it has them).
            vocabulary: class names (``set_vocabulary`` changes them).
            score_fn: replaces CLIP's scoring (oracle experiments and tests).
        """
        super().__init__()
        check_choice("MODE", mode)
        check_choice("CROP_STYLE", crop_style)
        self.backbone = backbone
        self.preprocess = ClipPreprocessor(pixel_mean, pixel_std, clip_resolution, image_format)  # BGR -> RGB
        self.clip_resolution = tuple(clip_resolution)
        self.mode = mode
        # a reference, not a submodule: the backbone owns the CLIP model (its one place in the state dict)
        hold_reference(self, "text_encoder", TextEncoder(backbone.clip_model, backbone.tokenizer))
        self.classifier = VocabularyClassifier(self.text_encoder, templates)
        self.pool_resolution = pool_resolution
        self.crop_style = crop_style
        native = getattr(backbone.clip_model.visual, "image_size", 224)
        self.crop_size = int(crop_size) or int(native[0] if isinstance(native, (tuple, list)) else native)
        self.crop_batch = max(int(crop_batch), 1)
        self.fill_uncovered = fill_uncovered
        self.panoptic_on = panoptic_on
        self.overlap_threshold = overlap_threshold
        self.thing_classes = None if thing_classes is None else list(thing_classes)
        self.alpha, self.beta = alpha, beta
        self.seen_classes = list(seen_classes) if seen_classes else None
        self.proposal_model = proposal_model
        self.proposal_format = proposal_format
        self.image_format = image_format
        self.proposal_mask_threshold = proposal_mask_threshold
        self.proposal_score_threshold = proposal_score_threshold
        self.use_proposal_scores = use_proposal_scores
        self.score_fn = score_fn
        self.vocabulary: Optional[List[str]] = None
        if vocabulary:
            self.set_vocabulary(vocabulary)

    @classmethod
    def from_config(cls, cfg):
        p, m = cfg.MODEL.PIXELCLIP, cfg.MODEL.MASK_CLASSIFIER
        check_choice("MASK_SOURCE", m.MASK_SOURCE)
        proposal_model, proposal_format = None, cfg.INPUT.FORMAT
        if m.MASK_SOURCE == "model":
            proposal_model, proposal_format = build_proposal_model(
                m.PROPOSAL_MODEL.CONFIG_FILE, m.PROPOSAL_MODEL.WEIGHTS, m.PROPOSAL_MODEL.CONFIG_FUNCS, cfg.MODEL.DEVICE)
        seen = None
        if m.SEEN_CLASSES:
            from pixelclip.data.vocabulary import load_vocabulary

            seen = load_vocabulary(m.SEEN_CLASSES)
        thing_classes = None
        if cfg.DATASETS.TEST:
            mapping = MetadataCatalog.get(cfg.DATASETS.TEST[0]).get("thing_dataset_id_to_contiguous_id", None)
            thing_classes = sorted(mapping.values()) if mapping else None
        return {
            "backbone": build_backbone(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "clip_resolution": p.CLIP_RESOLUTION,
            "mode": m.MODE,
            "templates": get_templates(p.TEST.TEMPLATES),
            "pool_resolution": m.POOL_RESOLUTION,
            "crop_style": m.CROP_STYLE,
            "crop_size": m.CROP_SIZE,
            "crop_batch": m.CROP_BATCH,
            "fill_uncovered": m.FILL_UNCOVERED,
            "panoptic_on": m.PANOPTIC_ON,
            "overlap_threshold": m.OVERLAP_THRESHOLD,
            "thing_classes": thing_classes,
            "alpha": m.ALPHA,
            "beta": m.BETA,
            "seen_classes": seen,
            "proposal_model": proposal_model,
            "proposal_format": proposal_format,
            "image_format": cfg.INPUT.FORMAT,
            "proposal_mask_threshold": m.PROPOSAL_MODEL.MASK_THRESHOLD,
            "proposal_score_threshold": m.PROPOSAL_MODEL.SCORE_THRESHOLD,
            "use_proposal_scores": m.PROPOSAL_MODEL.USE_CLASS_SCORES,
            "vocabulary": default_vocabulary(cfg),
        }

    @property
    def device(self) -> torch.device:
        return self.preprocess.device

    def set_vocabulary(self, class_names: Sequence[str]) -> None:
        """Classes the masks are classified into (e.g. a test dataset's ``stuff_classes``)."""
        if not class_names:
            raise ValueError("the vocabulary is empty")
        self.vocabulary = list(class_names)
        self._seen = seen_class_mask(self.vocabulary, self.seen_classes)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _output_size(x: Dict) -> Tuple[int, int]:
        return int(x.get("height", x["image"].shape[-2])), int(x.get("width", x["image"].shape[-1]))

    def _input_masks(self, x: Dict) -> torch.Tensor:
        if "masks" not in x:
            raise KeyError(
                f"input {x.get('file_name', '')} has no 'masks': use INPUT.TEST_MAPPER_NAME 'mask_classification' "
                "(MASK_SOURCE gt|json), or MASK_SOURCE model with a PROPOSAL_MODEL")
        masks = x["masks"]
        masks = torch.as_tensor(np.asarray(masks)) if not isinstance(masks, torch.Tensor) else masks
        masks = masks.to(self.device).bool()
        size = self._output_size(x)
        if masks.dim() != 3:
            raise ValueError(f"masks of {x.get('file_name', '')} have shape {tuple(masks.shape)}; expected N×H×W")
        if tuple(masks.shape[-2:]) != size:
            masks = F.interpolate(masks[None].float(), size=size, mode="nearest")[0].bool()
        return masks

    def _proposals(self, batched_inputs: List[Dict]) -> Tuple[List[torch.Tensor], List[Optional[torch.Tensor]]]:
        inputs = batched_inputs
        if {self.proposal_format, self.image_format} == {"RGB", "BGR"}:
            inputs = [dict(x, image=x["image"].flip(0)) for x in batched_inputs]
        outputs = self.proposal_model(inputs)
        masks, probs = [], []
        k = len(self.vocabulary)
        for x, out in zip(batched_inputs, outputs):
            m, p = masks_from_output(out, k, self.proposal_mask_threshold, self.proposal_score_threshold)
            m = m.to(self.device)
            size = self._output_size(x)
            if tuple(m.shape[-2:]) != size:
                m = F.interpolate(m[None].float(), size=size, mode="nearest")[0].bool()
            masks.append(m)
            probs.append(p.to(self.device) if (p is not None and self.use_proposal_scores) else None)
        return masks, probs

    def _crop_embeddings(self, x: Dict, masks: torch.Tensor) -> torch.Tensor:
        """Crop mode: N×C global CLIP embeddings of the masked crops (ZegFormer), N ≥ 1."""
        image = self.preprocess.normalize(x["image"])
        embeddings = []
        for start in range(0, masks.shape[0], self.crop_batch):
            crops = crop_masked_regions(image, masks[start:start + self.crop_batch], self.crop_size, self.crop_style)
            embeddings.append(self.backbone.encode_image(crops).float())
        return torch.cat(embeddings)

    def _pixel_probs(self, dense: torch.Tensor, text: torch.Tensor, scale: float, size: Tuple[int, int]) -> torch.Tensor:
        """Dense per-pixel class probabilities K×H×W (PixelCLIP's inference) for uncovered pixels."""
        r = self.pool_resolution
        feats = dense[None].float()
        if r > 0:
            feats = F.interpolate(feats, size=(r, r), mode="bilinear", align_corners=False)
        logits = cosine_logits(feats, text, scale)
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0]
        return logits.softmax(dim=0)

    # ------------------------------------------------------------------ inference
    def forward(self, batched_inputs: List[Dict]) -> List[Dict]:
        if self.training:
            raise RuntimeError("ZeroShotMaskClassifier has no training step; run "
                               "projects/MaskClassification/train_net.py with --eval-only")
        return self.inference(batched_inputs)

    @torch.no_grad()
    def inference(self, batched_inputs: List[Dict]) -> List[Dict]:
        if not self.vocabulary:
            raise RuntimeError("ZeroShotMaskClassifier has no vocabulary: set MODEL.PIXELCLIP.TEST.VOCABULARY, register the "
                               "test dataset's stuff_classes, or call model.set_vocabulary([...])")
        if self.proposal_model is not None and not all("masks" in x for x in batched_inputs):
            all_masks, in_vocab = self._proposals(batched_inputs)
        else:
            all_masks = [self._input_masks(x) for x in batched_inputs]
            in_vocab = [x.get("mask_class_probs") for x in batched_inputs]
        text = self.classifier(self.vocabulary).to(self.device)  # K×C unit-norm
        scale = float(self.backbone.clip_model.logit_scale.exp().clamp(max=100))
        sizes = [self._output_size(x) for x in batched_inputs]
        need_dense = self.score_fn is None and self.mode == "dense"
        need_dense |= self.fill_uncovered and any(m.shape[0] == 0 or not bool(m.any(0).all()) for m in all_masks)
        dense = None
        if need_dense:
            dense = self.backbone(self.preprocess.batch([x["image"] for x in batched_inputs]))["clip_dense"]

        results = []
        for i, (x, masks) in enumerate(zip(batched_inputs, all_masks)):
            if masks.shape[0] == 0:
                probs = text.new_zeros((0, len(self.vocabulary)))
            elif self.score_fn is not None:
                probs = self.score_fn(x, masks, self.vocabulary).to(self.device).float()
            else:
                if self.mode == "dense":  # PixelCLIP: mean of dense features inside each mask
                    embeddings, _ = dense_mask_embeddings(dense[i], masks, self.pool_resolution)
                else:  # ZegFormer: global embedding of each masked crop
                    embeddings = self._crop_embeddings(x, masks)
                probs = cosine_logits(embeddings, text, scale).softmax(dim=-1)
            if in_vocab[i] is not None and masks.shape[0]:
                probs = geometric_ensemble(torch.as_tensor(in_vocab[i]).to(probs), probs, self._seen, self.alpha, self.beta)
            fill = None
            if self.fill_uncovered and dense is not None and (masks.shape[0] == 0 or not bool(masks.any(0).all())):
                fill = self._pixel_probs(dense[i], text, scale, sizes[i])
            out = {"sem_seg": semantic_scores(probs, masks, fill), "mask_probs": probs}
            if self.panoptic_on:
                out["panoptic_seg"] = panoptic_from_masks(probs, masks, self.overlap_threshold, self.thing_classes)
            results.append(out)
        return results
