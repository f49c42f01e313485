"""Unlabeled masks from DINO: k-means on the patch tokens of a self-supervised ViT-S/16.

PixelCLIP (Shin et al., NeurIPS 2024, Sec. 4 / Table 5) also trains with masks made by
clustering DINO (Caron et al., ICCV 2021) features instead of SAM masks: each image's last-layer
patch tokens are grouped into 16 clusters by k-means, and each cluster becomes one mask. The same
module serves ``tools/generate_masks.py --method dino`` (masks written to files) and the model
(``MODEL.DINO.ENABLED``: masks made online for each batch).

Weights are read from a local file (timm's key layout or the original DINO release's, which
differs only by wrapping/prefixes); nothing is downloaded.
"""
import logging
import os
from typing import Any, Dict, List, Sequence

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DinoKMeansMasker", "build_dino_backbone", "build_dino_masker", "kmeans", "load_dino_state_dict"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # 0-255 RGB
IMAGENET_STD = (58.395, 57.12, 57.375)

_WRAPPER_KEYS = ("teacher", "model", "state_dict", "module")  # DINO / generic training checkpoints
_PREFIXES = ("module.", "backbone.", "model.")
_DROPPED = ("head.", "fc_norm.")  # classification / DINO projection head, unused here


def load_dino_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a ViT state dict from ``path`` (``.pth``/``.pt``/``.bin`` or ``.safetensors``), unwrap a
    training checkpoint (``teacher``/``model``/``state_dict``) and strip ``module.``/``backbone.``
    prefixes (the original DINO release's layout); the result uses timm's keys."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(
            f"DINO weights file {path!r} not found. Give a local file with the ViT-S/16 DINO weights "
            "(timm 'vit_small_patch16_224.dino' safetensors, or the original dino_deitsmall16_pretrain.pth)")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"DINO weights file {path!r} cannot be read as a PyTorch/safetensors state dict: {e}") from None
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"DINO weights file {path!r} does not hold a state dict of tensors")
    cleaned = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        if not key.startswith(_DROPPED):
            cleaned[key] = value
    return cleaned


def build_dino_backbone(model_name: str, weights: str, **model_kwargs: Any) -> nn.Module:
    """A timm ViT (``pretrained=False``, no head, any input size) with weights from a local file.

    Args:
        model_name: timm architecture, e.g. ``vit_small_patch16_224`` (DINO ViT-S/16).
        weights: path of the weights file; ``"random"`` keeps the random initialisation (tests only).
        model_kwargs: passed to ``timm.create_model`` (e.g. ``depth``/``embed_dim`` for tiny tests).
    Returns:
        the ViT in eval mode with frozen parameters.
    """
    state = None if weights == "random" else load_dino_state_dict(weights)  # fail fast on a bad file
    model = timm.create_model(model_name, pretrained=False, num_classes=0, dynamic_img_size=True, **model_kwargs)
    if state is None:
        logger.warning(f"DINO backbone {model_name}: random weights (weights='random'); masks are meaningless")
    else:
        own = model.state_dict()
        pos = state.get("pos_embed")
        if pos is not None and pos.shape != own["pos_embed"].shape and pos.shape[-1] == own["pos_embed"].shape[-1]:
            state["pos_embed"] = _resample_pos_embed(pos, own["pos_embed"], model.num_prefix_tokens)
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                 for k in own if k in state and state[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            raise ValueError(
                f"DINO weights file {weights!r} does not match timm's {model_name}: "
                f"missing keys {_head(missing)}, unexpected keys {_head(unexpected)}, "
                f"shape mismatches {_head(wrong)}")
        model.load_state_dict(state)
        logger.info(f"DINO backbone {model_name}: loaded {weights}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _head(items: List[str], n: int = 3) -> str:
    return "[" + ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "") + "]"


def _resample_pos_embed(pos: torch.Tensor, target: torch.Tensor, num_prefix: int) -> torch.Tensor:
    from timm.layers import resample_abs_pos_embed

    old = int(round((pos.shape[1] - num_prefix) ** 0.5))
    new = int(round((target.shape[1] - num_prefix) ** 0.5))
    return resample_abs_pos_embed(pos, [new, new], [old, old], num_prefix_tokens=num_prefix)


def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """Batched Lloyd k-means (Euclidean), deterministic given ``seed``.

    Args:
        x: B×N×C points.
        k: clusters (at most N).
        iters: Lloyd iterations.
        seed: seed of the k-means++ initialisation.
    Returns:
        labels: long B×N in [0, k).
    """
    b, n, _ = x.shape
    k = min(k, n)
    centres = _kmeans_pp_init(x, k, seed)
    labels = torch.cdist(x, centres).argmin(dim=-1)
    for _ in range(iters):
        one_hot = F.one_hot(labels, k).to(x.dtype)  # B×N×k
        counts = one_hot.sum(dim=1)[..., None]  # B×k×1
        sums = one_hot.transpose(1, 2) @ x  # B×k×C
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)  # empty: keep centre
        new_labels = torch.cdist(x, centres).argmin(dim=-1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return labels


def _kmeans_pp_init(x: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007) with a CPU generator: B×k×C centres."""
    generator = torch.Generator().manual_seed(seed)
    b, n, _ = x.shape
    batch = torch.arange(b, device=x.device)
    first = torch.randint(n, (b,), generator=generator).to(x.device)
    centres = [x[batch, first]]
    dist = torch.cdist(x, centres[0][:, None]).squeeze(-1) ** 2  # B×N
    for _ in range(1, k):
        weights = dist.double().cpu() + 1e-12
        pick = torch.multinomial(weights, 1, generator=generator).squeeze(1).to(x.device)
        centres.append(x[batch, pick])
        dist = torch.minimum(dist, torch.cdist(x, centres[-1][:, None]).squeeze(-1) ** 2)
    return torch.stack(centres, dim=1)


class DinoKMeansMasker(nn.Module):
    """Images -> one mask per k-means cluster of DINO patch tokens.

    Args:
        backbone: a timm ViT (``forward_features`` returns B×(prefix+h·w)×C tokens).
        num_clusters: k (16 in the paper).
        kmeans_iters: Lloyd iterations.
        input_size: square side the image is resized to (a multiple of the patch size).
        pixel_mean, pixel_std: normalisation in 0-255 RGB (ImageNet, as DINO was trained).
        seed: k-means initialisation seed.
        input_format: channel order of the images given to ``forward`` (``RGB`` or ``BGR``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_clusters: int = 16,
        kmeans_iters: int = 20,
        input_size: int = 448,
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
        seed: int = 0,
        input_format: str = "RGB",
    ):
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"DinoKMeansMasker: input_format must be RGB or BGR, got {input_format!r}")
        self.flip_channels = input_format == "BGR"
        patch = backbone.patch_embed.patch_size
        self.patch_size = patch[0] if isinstance(patch, (tuple, list)) else int(patch)
        if input_size % self.patch_size:
            raise ValueError(
                f"DinoKMeansMasker: input_size {input_size} is not a multiple of the patch size {self.patch_size}")
        self.backbone = backbone.eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.num_clusters = num_clusters
        self.kmeans_iters = kmeans_iters
        self.input_size = input_size
        self.seed = seed
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> "DinoKMeansMasker":
        super().train(mode)
        self.backbone.eval()  # always frozen
        return self

    @torch.no_grad()
    def patch_features(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W float 0-255 (``input_format``) -> B×h×w×C last-layer patch tokens (final norm)."""
        x = images.to(self.pixel_mean.dtype)
        if self.flip_channels:
            x = x.flip(1)
        x = (x - self.pixel_mean) / self.pixel_std
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        tokens = self.backbone.forward_features(x)
        prefix = getattr(self.backbone, "num_prefix_tokens", 1)
        grid = self.input_size // self.patch_size
        return tokens[:, prefix:].reshape(len(images), grid, grid, -1)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        """
        Args:
            images: B×3×H×W float in 0-255, channels in ``input_format`` (RGB by default).
        Returns:
            B bool tensors k_i×H×W (the non-empty clusters, nearest-upsampled to H×W).
        """
        feats = self.patch_features(images)
        b, h, w, c = feats.shape
        labels = kmeans(feats.reshape(b, h * w, c).float(), self.num_clusters, self.kmeans_iters, self.seed)
        k = min(self.num_clusters, h * w)
        grid = F.one_hot(labels, k).permute(0, 2, 1).reshape(b, k, h, w).float()
        full = F.interpolate(grid, size=images.shape[-2:], mode="nearest").bool()
        return [m[m.flatten(1).any(dim=1)] for m in full]

    def mask_image(self, image: np.ndarray) -> np.ndarray:
        """One H×W×3 uint8 RGB image -> bool masks N×H×W (numpy)."""
        x = torch.tensor(image).permute(2, 0, 1)[None].float()
        return self(x.to(self.pixel_mean.device))[0].cpu().numpy()


def build_dino_masker(cfg) -> DinoKMeansMasker:
    """The online masker of ``MODEL.DINO`` (``MODEL_NAME``, ``WEIGHTS``, ``NUM_CLUSTERS``,
    ``KMEANS_ITERS``, ``INPUT_SIZE``); it takes images in ``INPUT.FORMAT``."""
    d = cfg.MODEL.DINO
    if not d.WEIGHTS:
        raise ValueError(
            "MODEL.DINO.ENABLED needs MODEL.DINO.WEIGHTS: a local file with the DINO ViT-S/16 weights "
            "(or 'random' for tests)")
    backbone = build_dino_backbone(d.MODEL_NAME, d.WEIGHTS)
    return DinoKMeansMasker(backbone, num_clusters=d.NUM_CLUSTERS, kmeans_iters=d.KMEANS_ITERS,
                            input_size=d.INPUT_SIZE, input_format=cfg.INPUT.FORMAT)
