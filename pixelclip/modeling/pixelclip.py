"""META_ARCH "PixelCLIP": the training step and dense open-vocabulary inference."""
import logging
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from ..clip.dense import dense_features
from ..clip.text import SINGLE_TEMPLATE, LearnablePrompts, TextEncoder, VocabularyClassifier, get_templates
from ..config import check_pixelclip_values
from ..data.vocabulary import default_vocabulary
from ..utils.modules import hold_reference
from .cluster_stats import current_storage, log_cluster_stats
from .clustering import cluster_targets, resize_masks
from .decoder import CostVolumeDecoder
from .momentum import MomentumEncoder
from .postprocess import _linear_taps, argmax_labels, few_threads, resize_logits
from .preprocess import ClipPreprocessor
from .scoring import cosine_logits

logger = logging.getLogger(__name__)


def _init_words(spec: str) -> List[str]:
    """PROMPT_INIT_WORDS: "" -> [], else a word list ("a,b,c" or a class/word file)."""
    if not spec:
        return []
    from ..data.vocabulary import load_vocabulary

    return load_vocabulary(spec)


def _resized_norm(features: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """L2 norm over C of the bilinear resizing (``align_corners=False``) of B×C×h×w features to
    ``size`` -> B×1×H×W, without resizing the C channels.

    A resized feature is a weighted sum of its 4 source corners, so its squared norm is the same
    weights applied to the corners' dot products: 5 dot-product maps of the source grid (each
    feature with itself and its right, lower and two diagonal neighbours), combined in float64."""
    _, _, h, w = features.shape
    ys, p, q = _linear_taps(h, size[0], features.device)
    xs, u, v = _linear_taps(w, size[1], features.device)
    p, q, u, v = p.double(), q.double(), u.double(), v.double()
    f = F.pad(features.float(), (0, 1, 0, 1), mode="replicate").double()  # B×C×(h+1)×(w+1), edge-padded
    self_dot = (f * f).sum(1)  # B×(h+1)×(w+1)
    right = (f[..., :-1] * f[..., 1:]).sum(1)  # B×(h+1)×w
    down = (f[:, :, :-1] * f[:, :, 1:]).sum(1)  # B×h×(w+1)
    diagonals = (f[:, :, :-1, :-1] * f[:, :, 1:, 1:]).sum(1) + (f[:, :, :-1, 1:] * f[:, :, 1:, :-1]).sum(1)  # B×h×w
    # along x: |u·a + v·b|² on every source row, and the cross term of rows a and a + 1
    row = u * u * self_dot[..., xs] + v * v * self_dot[..., xs + 1] + 2 * u * v * right[..., xs]  # B×(h+1)×W
    cross = u * u * down[..., xs] + v * v * down[..., xs + 1] + u * v * diagonals[..., xs]  # B×h×W
    # along y: |p·A + q·B|² = p²|A|² + q²|B|² + 2pq A·B
    norm2 = (p * p)[:, None] * row[:, ys] + (q * q)[:, None] * row[:, ys + 1] + (2 * p * q)[:, None] * cross[:, ys]
    return norm2.clamp_min(0).sqrt().float()[:, None]


def _resized_cosine(features: torch.Tensor, text: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Cosine similarity of the bilinearly resized B×C×h×w features with K×C unit text embeddings
    -> B×K×H×W (channels-last memory).

    Resizing is linear, so the dot products are taken on the h×w grid and their K maps resized
    (instead of the C feature maps: for ViT-B, 512 channels on a 64×64 grid cost more than the
    whole rest of the path); the norms come from ``_resized_norm``. Same values as resizing the
    features first (the release's order), up to float rounding."""
    features = features.float().contiguous(memory_format=torch.channels_last)  # C innermost: one GEMM
    scores = torch.einsum("bchw,kc->bkhw", features, text.float()).contiguous(memory_format=torch.channels_last)
    scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
    with few_threads(features.device):  # about 25 small ops
        norm = _resized_norm(features, size)
    return scores / norm.clamp_min(1e-12)


@META_ARCH_REGISTRY.register()
class PixelCLIP(nn.Module):
    """PixelCLIP (Shin et al., NeurIPS 2024).

    Training: a batch of images with unlabeled masks -> ``{"loss_masks"}``. The student (the
    backbone's image tower) sees the strong view, the EMA teacher the weak one; masks are grouped
    online into K clusters whose centres are learnable class prompts; a light decoder predicts each
    cluster's union of masks from the student's cost volume; binary cross-entropy.
    Inference: ``[{"image": 3×H×W uint8, "height", "width"}]`` -> ``[{"sem_seg": K×height×width}]``,
    K = vocabulary size, scores = cosine similarity of dense features with class-name embeddings;
    with ``output="labels"`` (TEST.OUTPUT) ``[{"sem_seg_labels": height×width}]``, their arg-max.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        decoder: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        clip_resolution: Tuple[int, int] = (320, 320),
        num_prompts: int = 64,
        prompt_length: int = 4,
        prompt_template: str = "A photo of a {} in the scene",
        prompt_init_seed: int = 0,
        prompt_init_words: Sequence[str] = (),
        learn_prompts: bool = True,
        mask_resolution: int = 256,
        eps: float = 100.0,
        sinkhorn_iters: int = 3,
        use_momentum: bool = True,
        momentum: float = 0.999,
        test_templates: Sequence[str] = (SINGLE_TEMPLATE,),
        test_feature_resolution: int = 64,
        test_mode: str = "whole",
        slide_overlap: float = 0.333,
        test_flip: bool = False,
        autocast: str = "",
        output: str = "logits",
        vocabulary: Optional[Sequence[str]] = None,
        dino_masker: Optional[nn.Module] = None,
        input_format: str = "RGB",
    ):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.preprocess = ClipPreprocessor(pixel_mean, pixel_std, clip_resolution, input_format)
        self.clip_resolution = tuple(clip_resolution)
        # the text tower is the backbone's (one owner in the state dict); the rest hold references to it
        hold_reference(self, "text_encoder", TextEncoder(backbone.clip_model, backbone.tokenizer))
        self.prompts = LearnablePrompts(self.text_encoder, num_prompts, prompt_length, prompt_template,
                                        prompt_init_seed, learnable=learn_prompts, init_words=prompt_init_words)
        self.classifier = VocabularyClassifier(self.text_encoder, test_templates)
        self.teacher = MomentumEncoder(backbone.visual, momentum) if use_momentum else None
        self.mask_resolution = mask_resolution
        self.eps = eps
        self.sinkhorn_iters = sinkhorn_iters
        self.test_feature_resolution = test_feature_resolution
        if test_mode not in ("whole", "slide"):
            raise ValueError(f"MODEL.PIXELCLIP.TEST.MODE must be 'whole' or 'slide', got '{test_mode}'")
        self.test_mode = test_mode
        self.slide_overlap = slide_overlap
        self.test_flip = test_flip
        if autocast not in ("", "fp16", "bf16"):
            raise ValueError(f"MODEL.PIXELCLIP.TEST.AUTOCAST must be '', 'fp16' or 'bf16', got '{autocast}'")
        self.autocast = autocast
        if output not in ("logits", "labels"):
            raise ValueError(f"MODEL.PIXELCLIP.TEST.OUTPUT must be 'logits' or 'labels', got '{output}'")
        self.test_output = output
        self.vocabulary = list(vocabulary) if vocabulary else None
        self.dino_masker = dino_masker

    @classmethod
    def from_config(cls, cfg):
        check_pixelclip_values(cfg)  # before anything is built
        p = cfg.MODEL.PIXELCLIP
        dino_masker = None
        if cfg.MODEL.DINO.ENABLED:
            from ..masks.dino import build_dino_masker

            dino_masker = build_dino_masker(cfg)
        return {
            "backbone": build_backbone(cfg),
            "decoder": CostVolumeDecoder(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "input_format": cfg.INPUT.FORMAT,
            "clip_resolution": p.CLIP_RESOLUTION,
            "num_prompts": p.NUM_PROMPTS,
            "prompt_length": p.PROMPT_LENGTH,
            "prompt_template": p.PROMPT_TEMPLATE,
            "prompt_init_seed": p.PROMPT_INIT_SEED,
            "prompt_init_words": _init_words(p.PROMPT_INIT_WORDS),
            "learn_prompts": p.LEARN_PROMPTS,
            "mask_resolution": p.MASK_RESOLUTION,
            "eps": p.EPS,
            "sinkhorn_iters": p.SINKHORN_ITERS,
            "use_momentum": p.USE_MOMENTUM,
            "momentum": p.MOMENTUM,
            "test_templates": get_templates(p.TEST.TEMPLATES),
            "test_feature_resolution": p.TEST.FEATURE_RESOLUTION,
            "test_mode": p.TEST.MODE,
            "slide_overlap": p.TEST.SLIDE_OVERLAP,
            "test_flip": p.TEST.FLIP,
            "autocast": p.TEST.AUTOCAST,
            "output": p.TEST.OUTPUT,
            "vocabulary": default_vocabulary(cfg),
            "dino_masker": dino_masker,
        }

    @property
    def device(self) -> torch.device:
        return self.preprocess.device

    @property
    def dense_mode(self) -> str:
        """The backbone's MODEL.PIXELCLIP.DENSE_MODE; the teacher's dense path is the same, so the
        clustering sees the features the student is trained through."""
        return getattr(self.backbone, "dense_mode", "value")

    def set_vocabulary(self, class_names: Sequence[str]) -> None:
        """Classes that inference scores (e.g. a test dataset's ``stuff_classes``)."""
        if not class_names:
            raise ValueError("the vocabulary is empty")
        self.vocabulary = list(class_names)

    # ------------------------------------------------------------------ training
    def forward(self, batched_inputs: List[Dict]):
        if not self.training:
            return self.inference(batched_inputs)
        return self.losses(batched_inputs)

    def _masks_of(self, batched_inputs: List[Dict]) -> List[torch.Tensor]:
        """Unlabeled masks of each image (online DINO clusters, or the mapper's ``gt_masks``), resized to
        MASK_RESOLUTION and filtered: B tensors N_i×R×R (bool) on the model's device.

        File masks are resized where they are (the data loader's CPU tensors) and copied after, R×R instead
        of H×W; masks the mapper already gave at R×R (``pixelclip/data/mappers/mask_resolution.py``) are
        only filtered: the same masks either way."""
        if self.dino_masker is not None:
            images = torch.stack([x["image"].to(self.device).float() for x in batched_inputs])
            return [resize_masks(m, self.mask_resolution) for m in self.dino_masker(images)]
        out = []
        for x in batched_inputs:
            inst = x.get("instances")
            if inst is None or not inst.has("gt_masks"):
                out.append(torch.zeros((0, self.mask_resolution, self.mask_resolution), dtype=torch.bool,
                                       device=self.device))
            else:
                gt = inst.gt_masks
                masks = (gt.tensor if hasattr(gt, "tensor") else gt).bool()
                out.append(resize_masks(masks, self.mask_resolution).to(self.device))
        return out

    def losses(self, batched_inputs: List[Dict]) -> Dict[str, torch.Tensor]:
        weak = self.preprocess.batch([x["image"] for x in batched_inputs])
        strong = self.preprocess.batch([x.get("image_strong", x["image"]) for x in batched_inputs])
        masks = self._masks_of(batched_inputs)
        teacher_features = self.teacher_features(weak)
        student_features = self.backbone(strong)["clip_dense"]  # B×C×h×w
        prompt_embeddings = self.prompts()  # K×C
        targets, valid, assignment = cluster_targets(teacher_features, masks, prompt_embeddings.detach(),
                                                     self.eps, self.sinkhorn_iters)
        loss = self.mask_loss(student_features, prompt_embeddings, targets, valid)
        if current_storage() is not None:  # in a trainer: per-step diagnostics (class names read for the log only)
            class_embeddings = self.classifier(self.vocabulary) if self.vocabulary else None  # encoded once, cached
            log_cluster_stats(masks, assignment, targets, valid, prompt_embeddings, class_embeddings)
        return {"loss_masks": loss}

    @torch.no_grad()
    def teacher_features(self, weak: torch.Tensor) -> torch.Tensor:
        """Dense features B×C×h×w of the weak views by the EMA teacher, after its EMA step (at the start
        of the step, as the release), or by the student's tower when there is no teacher."""
        visual = self.backbone.visual
        if self.teacher is None:
            return dense_features(visual, weak, self.dense_mode)
        self.teacher.update(visual)
        return self.teacher(weak, self.dense_mode)

    def mask_loss(self, student_features: torch.Tensor, prompt_embeddings: torch.Tensor, targets: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
        """Decoder prediction from the student's cost volume and its BCE against the cluster targets.

        Arguments:
            student_features: B×C×h×w; prompt_embeddings: K×C; targets: B×K×R×R (0/1);
            valid: B×R×R (pixels covered by at least one mask).
        Returns:
            the mean BCE over the K channels of the valid pixels (a scalar).
        """
        # cost volume S = cos(P_k, f_ij): B×K×h×w
        cost = cosine_logits(student_features, prompt_embeddings)
        logits = self.decoder(cost)
        logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        # targets in the logits' dtype: BCE-with-logits computes in its target's dtype (float32 targets would
        # round a float64 model's loss and gradients)
        bce = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")  # B×K×R×R
        weight = valid[:, None].to(bce.dtype)
        # no valid pixel in the batch: 0 / 1, a zero loss that keeps every parameter in the graph (no host sync
        # to test for it: with a valid pixel the divisor is ≥ K ≥ 1 and the clamp changes nothing)
        return (bce * weight).sum() / (weight.sum() * bce.shape[1]).clamp_min(1.0)

    # ------------------------------------------------------------------ inference
    def _autocast(self):
        if not self.autocast:
            return nullcontext()
        dtype = torch.float16 if self.autocast == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _score(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """CLIP-normalised B×3×h×w -> cosine logits B×K×r×r (r = TEST.FEATURE_RESOLUTION), averaged
        with those of the flipped images when TEST.FLIP."""
        logits = self._cosine_logits(images, text)
        if self.test_flip:
            logits = 0.5 * (logits + self._cosine_logits(images.flip(-1), text).flip(-1))
        return logits

    def _cosine_logits(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            feats = self.backbone(images)["clip_dense"]
        r = self.test_feature_resolution
        return _resized_cosine(feats, text, (r, r))

    def _slide_logits(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Overlapping CLIP_RESOLUTION windows over one normalised 3×H×W image -> K×h'×w' logits on a
        grid scaled by FEATURE_RESOLUTION / CLIP_RESOLUTION."""
        wh, ww = self.clip_resolution
        h, w = image.shape[-2:]
        if h < wh or w < ww:  # pad small images up to one window
            image = F.pad(image, (0, max(ww - w, 0), 0, max(wh - h, 0)))
        ph, pw = image.shape[-2:]
        sh, sw = max(int(wh * (1 - self.slide_overlap)), 1), max(int(ww * (1 - self.slide_overlap)), 1)
        ys = list(range(0, ph - wh + 1, sh)) + ([ph - wh] if (ph - wh) % sh else [])
        xs = list(range(0, pw - ww + 1, sw)) + ([pw - ww] if (pw - ww) % sw else [])
        boxes = [(y, x) for y in ys for x in xs]
        crops = torch.stack([image[:, y:y + wh, x:x + ww] for y, x in boxes])
        window_logits = self._score(crops, text)  # N×K×r×r
        scale = self.test_feature_resolution / wh
        gh, gw = round(ph * scale), round(pw * scale)
        canvas = text.new_zeros((text.shape[0], gh, gw))
        count = text.new_zeros((1, gh, gw))
        rh, rw = round(wh * scale), round(ww * scale)
        for (y, x), logit in zip(boxes, window_logits):
            y0, x0 = round(y * scale), round(x * scale)
            logit = F.interpolate(logit[None], size=(rh, rw), mode="bilinear", align_corners=False)[0]
            canvas[:, y0:y0 + rh, x0:x0 + rw] += logit[:, : gh - y0, : gw - x0]
            count[:, y0:y0 + rh, x0:x0 + rw] += 1
        canvas = canvas / count.clamp_min(1)
        return canvas[:, : round(h * scale), : round(w * scale)]

    @torch.no_grad()
    def inference(self, batched_inputs: List[Dict]) -> List[Dict[str, torch.Tensor]]:
        if not self.vocabulary:
            raise RuntimeError("PixelCLIP has no vocabulary: set MODEL.PIXELCLIP.TEST.VOCABULARY, register the test "
                               "dataset's stuff_classes, or call model.set_vocabulary([...])")
        text = self.classifier(self.vocabulary).to(self.device)  # K×C, cached per vocabulary
        if self.test_mode == "whole":
            per_image = self._score(self.preprocess.batch([x["image"] for x in batched_inputs]), text)  # B×K×r×r
        else:
            per_image = [self._slide_logits(self.preprocess.normalize(x["image"]), text) for x in batched_inputs]
        sizes = [(x.get("height", x["image"].shape[-2]), x.get("width", x["image"].shape[-1])) for x in batched_inputs]
        if self.test_output == "labels":
            return [{"sem_seg_labels": lb} for lb in argmax_labels(per_image, sizes)]
        return [{"sem_seg": s} for s in resize_logits(per_image, sizes)]

