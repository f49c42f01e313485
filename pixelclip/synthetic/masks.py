"""Unlabeled masks for the synthetic world, in the spirit of SAM, and a random-mask control.

:func:`sam_like_masks` turns a scene's region/instance map (no class labels) into masks the way
SAM's automatic generator behaves on real images: every connected region is over-segmented at
random into parts, borders are noisy, some regions are missed, and sometimes the whole region is
kept too (a coarser granularity, as SAM's multi-level output). Labels are never looked at.

:func:`random_masks_like` is the control of the paper's spirit: the same masks (same sizes and
shapes) moved to random places, flipped and transposed, without regard to the image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskNoiseConfig:
    """How far the synthetic masks are from the true regions."""

    split_prob: float = 0.7  # chance that a connected region is over-segmented
    area_per_part: float = 0.06  # expected part size (fraction of the image) when splitting
    max_parts: int = 5  # at most this many parts per region
    whole_prob: float = 0.3  # a split region also keeps its whole mask with this chance
    drop_prob: float = 0.1  # a region (or part) is missed with this chance
    border_sigma: float = 1.5  # pixels; smoothing scale of the border noise
    border_noise: float = 0.35  # amplitude of the threshold noise (0 = exact borders)
    min_area: int = 12  # masks smaller than this many pixels are dropped


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _split_region(rng: np.random.Generator, region: np.ndarray, parts: int) -> List[np.ndarray]:
    """Split a bool H×W region into ``parts`` pieces by a warped Voronoi of seeds inside it."""
    ys, xs = np.nonzero(region)
    pick = rng.choice(len(ys), size=parts, replace=False)
    h, w = region.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.stack([np.hypot(xx - xs[i], yy - ys[i]) for i in pick])
    dist += 4.0 * np.stack([_smooth_field(rng, h, w, 6) for _ in range(parts)])
    owner = dist.argmin(0)
    return [region & (owner == p) for p in range(parts)]


def _noisy_border(rng: np.random.Generator, mask: np.ndarray, cfg: MaskNoiseConfig) -> np.ndarray:
    """Blur the mask and threshold it with a smooth random field: borders wobble by a few pixels."""
    if cfg.border_noise <= 0:
        return mask
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), cfg.border_sigma)
    h, w = mask.shape
    field = _smooth_field(rng, h, w, max(4, h // 8)) * cfg.border_noise
    return (soft + field * 0.5) > 0.5


def sam_like_masks(regions: np.ndarray, seed: int, cfg: MaskNoiseConfig = MaskNoiseConfig()) -> np.ndarray:
    """Class-agnostic, over-segmented, noisy masks of a region/instance map.

    Arguments:
        regions: H×W int array, one id per region or instance (0 = none); no class information.
        seed: seed of the randomness (split points, border noise, misses).
        cfg: noise levels.
    Returns:
        bool N×H×W masks, largest first (they may overlap and need not cover the image).
    """
    rng = np.random.default_rng([int(seed), 7])
    h, w = regions.shape
    out: List[np.ndarray] = []
    for rid in np.unique(regions):
        if rid == 0:
            continue
        n_cc, cc = cv2.connectedComponents((regions == rid).astype(np.uint8), connectivity=4)
        for c in range(1, n_cc):
            region = cc == c
            area = int(region.sum())
            if area < cfg.min_area:
                continue
            pieces = [region]
            if rng.random() < cfg.split_prob:
                expected = area / (cfg.area_per_part * h * w)
                parts = int(np.clip(1 + rng.poisson(expected), 2, cfg.max_parts))
                parts = min(parts, max(1, area // cfg.min_area))
                if parts >= 2:
                    pieces = _split_region(rng, region, parts)
                    if rng.random() < cfg.whole_prob:
                        pieces.append(region)
            for piece in pieces:
                if rng.random() < cfg.drop_prob:
                    continue
                m = _noisy_border(rng, piece, cfg)
                if m.sum() >= cfg.min_area:
                    out.append(m)
    if not out:
        return np.zeros((0, h, w), bool)
    masks = np.stack(out)
    order = np.argsort(-masks.reshape(len(masks), -1).sum(1), kind="stable")
    return masks[order]


def random_masks_like(masks: np.ndarray, seed: int) -> np.ndarray:
    """The control: each mask flipped/transposed at random and moved to a random place (cyclic
    shift, so its area is kept exactly), independently of the image and of the other masks.

    Arguments:
        masks: bool N×H×W.
    Returns:
        bool N×H×W with the same per-mask areas.
    """
    rng = np.random.default_rng([int(seed), 11])
    n, h, w = masks.shape
    out = np.zeros_like(masks)
    for i in range(n):
        m = masks[i]
        if rng.random() < 0.5:
            m = m[:, ::-1]
        if rng.random() < 0.5:
            m = m[::-1, :]
        if h == w and rng.random() < 0.5:
            m = m.T
        out[i] = np.roll(m, (int(rng.integers(h)), int(rng.integers(w))), axis=(0, 1))
    return out


def mask_scores(num: int, seed: int) -> Dict[str, List[float]]:
    """SAM-style quality fields for ``num`` masks (informative only; nothing reads them for training)."""
    rng = np.random.default_rng([int(seed), 13])
    return {
        "predicted_iou": [round(float(x), 4) for x in rng.uniform(0.8, 1.0, num)],
        "stability_score": [round(float(x), 4) for x in rng.uniform(0.85, 1.0, num)],
    }


def region_purity(masks: np.ndarray, labels: np.ndarray) -> Tuple[float, float]:
    """Diagnostics (uses labels; never called by training): mean fraction of each mask that falls
    in its majority class, and the fraction of pixels covered by at least one mask."""
    if len(masks) == 0:
        return 0.0, 0.0
    purities = []
    for m in masks:
        counts = np.bincount(labels[m].ravel())
        purities.append(counts.max() / max(1, counts.sum()))
    return float(np.mean(purities)), float(masks.any(0).mean())
