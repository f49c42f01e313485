"""Mask-average pooling and cosine scoring of dense CLIP features (PixelCLIP, Sec. 3.2 / 4).

The generic half of naming class-agnostic masks with CLIP: one embedding per mask is the average of
the encoder's dense, text-aligned features inside it, and a mask's class logits are its cosine
similarity with the text embeddings of a vocabulary at CLIP's logit scale. Stateless functions on
one image, for any framework that brings its own masks; ``projects/MaskClassification`` builds its
meta-architecture on them.
"""
from typing import Tuple

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------- pooling
def masks_to_grid(masks: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Fraction of each grid cell covered by each mask (area resampling).

    Arguments:
        masks: N×H×W, bool or float in [0, 1].
        size: (h, w) of the grid.
    Returns:
        N×h×w float weights. A mask smaller than one cell keeps a non-zero weight in it.
    """
    m = masks.float()
    if tuple(m.shape[-2:]) == tuple(size):
        return m
    return F.adaptive_avg_pool2d(m[None], tuple(size))[0]


def mask_pool(features: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """Average of ``features`` inside each mask (PixelCLIP's mask feature, Sec. 3.2 / 4).

    Arguments:
        features: C×h×w.
        masks: N×H×W (any resolution covering the same image extent as ``features``).
    Returns:
        N×C pooled features and an N bool vector that is False for masks with no area.
    """
    weights = masks_to_grid(masks, features.shape[-2:]).to(features.dtype)  # N×h×w
    total = weights.sum(dim=(1, 2))
    pooled = torch.einsum("nhw,chw->nc", weights, features) / total.clamp_min(eps)[:, None]
    return pooled, total > eps


def dense_mask_embeddings(dense: torch.Tensor, masks: torch.Tensor,
                          pool_resolution: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Dense CLIP features C×h×w -> one embedding per mask N×C (and validity N).

    The features are first bilinearly resized to ``pool_resolution``² (PixelCLIP's inference grid),
    the masks area-resampled onto the same grid."""
    if pool_resolution > 0 and tuple(dense.shape[-2:]) != (pool_resolution, pool_resolution):
        dense = F.interpolate(dense[None].float(), size=(pool_resolution, pool_resolution), mode="bilinear",
                              align_corners=False)[0]
    return mask_pool(dense.float(), masks)


# ---------------------------------------------------------------------------------------- scores
def cosine_logits(embeddings: torch.Tensor, text: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """``logit_scale · cos(e_n, t_k)``: N×C embeddings, K×C text -> N×K."""
    return logit_scale * F.normalize(embeddings.float(), dim=-1) @ F.normalize(text.float(), dim=-1).t()
