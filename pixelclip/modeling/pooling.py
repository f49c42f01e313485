"""Mask-average pooling of dense features: the one home of "the average of the features inside a mask".

Used by the online clustering (teacher features inside each unlabeled mask, PixelCLIP Sec. 3.3), by
mask classification from dense features (Sec. 4; ``projects/MaskClassification``) and by FC-CLIP's
``MaskPooling`` interface (``projects/FC-CLIP``). All of them are :func:`masked_average` over some
weights on the feature grid; :func:`pool_upsampled_features` is the exact shortcut the clustering
uses for features that would first be bilinearly upsampled to the masks' resolution.

Sums run in float32 (float64 for float64 inputs) with autocast off, whatever the features' dtype or an
enclosing autocast: a 256×256 mask sums 65,536 values, past float16's largest finite number (65,504), so
a float16 sum overflows to inf and the average becomes NaN. Averages come back in the features' dtype
(they are bounded by the features, so casting back cannot overflow).
"""
from typing import Tuple

import torch
import torch.nn.functional as F


def full_precision(features: torch.Tensor) -> Tuple[torch.Tensor, torch.autocast]:
    """``features`` in float32 (float64 stays float64) and a context that turns autocast off on their device."""
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    return features.to(dtype), torch.autocast(device_type=features.device.type, enabled=False)


def weighted_sums(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_p w_n(p) · f(p)``: features (…)×C×h×w, weights (…)×N×h×w -> (…)×N×C (one GEMM per batch item)."""
    w = weights.flatten(-2).to(features.dtype)  # (…)×N×hw
    return w @ features.flatten(-2).transpose(-1, -2)


def masked_average(features: torch.Tensor, weights: torch.Tensor, min_total: float) -> torch.Tensor:
    """Average of features (…)×C×h×w under each of the weights (…)×N×h×w -> (…)×N×C in the features' dtype
    (summed in float32 without autocast); the weights' sum is clamped to ``min_total`` (an empty mask gives a
    zero vector)."""
    f, no_autocast = full_precision(features)
    with no_autocast:
        w = weights.to(f.dtype)
        out = weighted_sums(f, w) / w.flatten(-2).sum(-1, keepdim=True).clamp_min(min_total)
    return out.to(features.dtype)


def pool_mask_features(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Average of C×H×W features inside each of N H×W masks -> N×C (at least one pixel counted)."""
    return masked_average(features, masks, 1.0)


def _bilinear_matrix(in_size: int, out_size: int, like: torch.Tensor) -> torch.Tensor:
    """out_size×in_size weights of 1-D bilinear resizing (``align_corners=False``), PyTorch's own:
    the resized identity (dtype and device of ``like``)."""
    eye = torch.eye(in_size, dtype=like.dtype, device=like.device)[None, None]  # 1×1×in×in
    return F.interpolate(eye, size=(out_size, in_size), mode="bilinear", align_corners=False)[0, 0]


def pool_upsampled_features(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Average of the bilinearly upsampled C×h×w features inside each of N R×R' masks -> N×C, equal
    to ``pool_mask_features(F.interpolate(features, (R, R')), masks)`` up to float rounding.

    Upsampling is linear, ``up(f) = Wy f Wxᵀ``, so the sum over a mask m of the upsampled features is
    the sum of ``f`` weighted by ``Wyᵀ m Wx`` (h×w): the C feature maps are never upsampled (for
    ViT-B at R = 256: 20×20 instead of 256×256 maps, and a GEMM over 400 instead of 65,536 pixels).
    The divisor is the mask's own pixel count, as in :func:`pool_mask_features`. Computed in float32
    without autocast (a mask's weights sum to its pixel count); returned in the features' dtype."""
    f, no_autocast = full_precision(features)
    with no_autocast:
        m = masks.to(f.dtype)
        wy = _bilinear_matrix(f.shape[-2], masks.shape[-2], f)  # R×h
        wx = _bilinear_matrix(f.shape[-1], masks.shape[-1], f)  # R'×w
        weights = wy.t() @ (m @ wx)  # N×h×w: each source feature's share of the mask's sum
        out = weighted_sums(f, weights) / m.flatten(1).sum(1, keepdim=True).clamp_min(1.0)
    return out.to(features.dtype)


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
        masks: N×H×W (any resolution covering the same image extent as ``features``), area-resampled
            onto the feature grid (:func:`masks_to_grid`).
    Returns:
        N×C pooled features and an N bool vector that is False for masks with no area.
    """
    weights = masks_to_grid(masks, features.shape[-2:]).to(features.dtype)  # N×h×w
    return masked_average(features, weights, eps), weights.sum(dim=(1, 2)) > eps


def dense_mask_embeddings(dense: torch.Tensor, masks: torch.Tensor,
                          pool_resolution: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Dense CLIP features C×h×w -> one embedding per mask N×C (and validity N).

    The features are first bilinearly resized to ``pool_resolution``² (PixelCLIP's inference grid),
    the masks area-resampled onto the same grid."""
    if pool_resolution > 0 and tuple(dense.shape[-2:]) != (pool_resolution, pool_resolution):
        dense = F.interpolate(dense[None].float(), size=(pool_resolution, pool_resolution), mode="bilinear",
                              align_corners=False)[0]
    return mask_pool(dense.float(), masks)


def positive_mask_pool(features: torch.Tensor, masks: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """FC-CLIP's ``MaskPooling``: mean of B×C×H×W ``features`` where B×Q×h×w mask logits are positive
    (masks bilinearly resized to H×W first when the sizes differ) -> B×Q×C. No gradient reaches the masks."""
    if tuple(masks.shape[-2:]) != tuple(features.shape[-2:]):
        masks = F.interpolate(masks.float(), size=features.shape[-2:], mode="bilinear", align_corners=False)
    with torch.no_grad():
        inside = (masks.detach() > 0).to(features.dtype)
    return masked_average(features, inside, eps)
