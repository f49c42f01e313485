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
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


def kmeans(
    x: torch.Tensor, k: int, max_iters: int = 100, tol: float = 1e-4, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """The release's k-means (``fast_pytorch_kmeans.KMeans(k)`` 0.2.x defaults), one image after another.

    Per image: centres are ``k`` points drawn uniformly with replacement (``torch.randint``, torch's RNG or
    ``generator``); then Lloyd steps (Euclidean) until the squared shift of all centres sums to at most
    ``tol`` or ``max_iters`` steps ran. A cluster that loses every point gets the zero vector as centre (the
    release's ``nan_to_num`` of an empty mean); the labels returned are those of the last assignment. Runs
    in float32 with autocast off, whatever the caller's precision.

    Args:
        x: B×N×C points.
        k: clusters (at most N).
        max_iters, tol: the release's stopping rule.
        generator: None draws from torch's global RNG (the release); a generator makes the draws repeatable.
    Returns:
        labels: long B×N in [0, k).
    """
    b, n, _ = x.shape
    k = min(k, n)
    with torch.autocast(x.device.type, enabled=False):
        return torch.stack([_lloyd(points, k, max_iters, tol, generator) for points in x.float()])


def _lloyd(x: torch.Tensor, k: int, max_iters: int, tol: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """N×C points -> N labels (see :func:`kmeans`)."""
    n = x.shape[0]
    draw_on = generator.device if generator is not None else x.device
    centres = x[torch.randint(0, n, (k,), generator=generator, device=draw_on).to(x.device)]
    sq_norms = (x * x).sum(dim=1, keepdim=True)  # N×1
    clusters = torch.arange(k, device=x.device)[:, None]  # k×1
    labels = torch.zeros(n, dtype=torch.long, device=x.device)
    for _ in range(max(1, max_iters)):
        # nearest centre by the largest -||x - c||^2 = 2 x.c - |x|^2 - |c|^2 (first centre on ties)
        similarity = 2 * x @ centres.T - sq_norms - (centres * centres).sum(dim=1)[None]
        labels = similarity.argmax(dim=1)
        members = (labels[None] == clusters).to(x.dtype)  # k×N
        means = torch.nan_to_num(members @ x / members.sum(dim=1, keepdim=True))  # empty cluster -> 0
        shift = (means - centres).pow(2).sum()
        centres = means
        if shift <= tol:
            break
    return labels


class DinoKMeansMasker(nn.Module):
    """Images -> one mask per k-means cluster of DINO patch tokens.

    As the release: DINO sees the (cropped) training image at its own size, cut down to a multiple of the
    patch (a 640×640 crop gives 40×40 tokens), normalised with ImageNet's mean and std; each image's
    tokens are clustered by :func:`kmeans`; the cluster map is nearest-upsampled to the image.

    Args:
        backbone: a timm ViT (``forward_features`` returns B×(prefix+h·w)×C tokens).
        num_clusters: k (16 in the paper).
        kmeans_iters, kmeans_tol: the k-means stopping rule (the release: 100 and 1e-4).
        input_size: 0 (the release) runs DINO on the image as it is (each side cut down to a multiple of the
            patch); N > 0 resizes it to N×N first (a multiple of the patch size).
        pixel_mean, pixel_std: normalisation in 0-255 RGB (ImageNet, as DINO was trained).
        seed: None draws the k-means initialisation from torch's RNG (the release); an int seeds a
            generator anew at each call, so the same image always gives the same masks (offline files).
        input_format: channel order of the images given to ``forward`` (``RGB`` or ``BGR``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_clusters: int = 16,
        kmeans_iters: int = 100,
        input_size: int = 0,
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
        seed: Optional[int] = None,
        input_format: str = "RGB",
        kmeans_tol: float = 1e-4,
    ):
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"DinoKMeansMasker: input_format must be RGB or BGR, got {input_format!r}")
        self.flip_channels = input_format == "BGR"
        patch = backbone.patch_embed.patch_size
        self.patch_size = patch[0] if isinstance(patch, (tuple, list)) else int(patch)
        if input_size < 0 or input_size % self.patch_size:
            raise ValueError(f"DinoKMeansMasker: input_size {input_size} is not 0 (the image as it is) nor a "
                             f"multiple of the patch size {self.patch_size}")
        self.backbone = backbone.eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.num_clusters = num_clusters
        self.kmeans_iters = kmeans_iters
        self.kmeans_tol = kmeans_tol
        self.input_size = input_size
        self.seed = seed
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> "DinoKMeansMasker":
        super().train(mode)
        self.backbone.eval()  # always frozen
        return self

    def grid_size(self, height: int, width: int) -> Tuple[int, int]:
        """(h, w) patch tokens DINO makes of a height×width image."""
        if self.input_size:
            return self.input_size // self.patch_size, self.input_size // self.patch_size
        if min(height, width) < self.patch_size:
            raise ValueError(f"DinoKMeansMasker: a {height}×{width} image is smaller than one "
                             f"{self.patch_size}-pixel patch")
        return height // self.patch_size, width // self.patch_size

    @torch.no_grad()
    def patch_features(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W float 0-255 (``input_format``) -> B×h×w×C last-layer patch tokens (final norm)."""
        x = images.to(self.pixel_mean.dtype)
        if self.flip_channels:
            x = x.flip(1)
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = self.grid_size(*x.shape[-2:])
        size = (h * self.patch_size, w * self.patch_size)
        if size != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        tokens = self.backbone.forward_features(x)
        prefix = getattr(self.backbone, "num_prefix_tokens", 1)
        return tokens[:, prefix:].reshape(len(images), h, w, -1)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        """
        Args:
            images: B×3×H×W float in 0-255, channels in ``input_format`` (RGB by default).
        Returns:
            B bool tensors k_i×H×W (the non-empty clusters, nearest-upsampled to H×W).
        """
        with torch.autocast(images.device.type, enabled=False):  # DINO and k-means in float32
            feats = self.patch_features(images.float())
            b, h, w, c = feats.shape
            generator = None
            if self.seed is not None:
                generator = torch.Generator(device=feats.device).manual_seed(self.seed)
            labels = kmeans(feats.reshape(b, h * w, c), self.num_clusters, self.kmeans_iters, self.kmeans_tol,
                            generator)
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
    ``KMEANS_ITERS``, ``KMEANS_TOL``, ``INPUT_SIZE``); it takes images in ``INPUT.FORMAT`` and draws its
    k-means initialisation from torch's RNG, as the release."""
    d = cfg.MODEL.DINO
    if not d.WEIGHTS:
        raise ValueError(
            "MODEL.DINO.ENABLED needs MODEL.DINO.WEIGHTS: a local file with the DINO ViT-S/16 weights "
            "(or 'random' for tests)")
    backbone = build_dino_backbone(d.MODEL_NAME, d.WEIGHTS)
    return DinoKMeansMasker(backbone, num_clusters=d.NUM_CLUSTERS, kmeans_iters=d.KMEANS_ITERS,
                            kmeans_tol=d.KMEANS_TOL, input_size=d.INPUT_SIZE, input_format=cfg.INPUT.FORMAT)
