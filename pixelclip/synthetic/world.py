"""A procedural world of "stuff" textures and "thing" objects with captions (issue 6).

Each scene is a function of one integer seed: a few stuff regions (a warped Voronoi partition,
each region one procedural texture), a few thing objects pasted on top (classes told apart by
shape and appearance), and from these

- the RGB image (H×W×3, uint8),
- the ground-truth label map (H×W, uint8, class ids into :data:`CLASS_NAMES`),
- the region/instance map (H×W, int32, one id per stuff region and per thing instance),
- an image-level caption that names the classes present, in random order, with a random
  template; it never says where (no positions, sizes or counts).

The label map is used only by the labelled validation set; training sees images with captions
(CLIP pre-training) or images with class-agnostic masks derived from the region map
(:mod:`pixelclip.synthetic.masks`).
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

STUFF_CLASSES: Tuple[str, ...] = ("grass", "water", "sand", "brick", "sky", "wood")
THING_CLASSES: Tuple[str, ...] = ("ball", "box", "star", "ring", "cross", "triangle")
CLASS_NAMES: Tuple[str, ...] = STUFF_CLASSES + THING_CLASSES
NUM_STUFF = len(STUFF_CLASSES)

# Caption templates: the class list fills {}; nothing here refers to positions.
CAPTION_TEMPLATES: Tuple[str, ...] = (
    "a photo of {}.",
    "a photo of {} in the scene.",
    "an image with {}.",
    "a picture showing {}.",
    "there is {} in this picture.",
    "a synthetic scene of {}.",
    "a rendering of {}.",
    "{}.",
    "this image contains {}.",
    "a photo of a {} in the scene.",
)


@dataclass(frozen=True)
class WorldConfig:
    """Difficulty knobs of the world (the defaults are what the demo and the configs use)."""

    image_size: int = 96  # square side in pixels
    min_stuff: int = 2  # stuff regions per image (distinct classes)
    max_stuff: int = 4
    min_things: int = 1  # thing instances per image
    max_things: int = 3
    thing_size: Tuple[float, float] = (0.2, 0.4)  # object diameter as a fraction of the side
    boundary_warp: float = 0.12  # amplitude of the region-boundary warp (fraction of the side)
    hue_jitter: float = 0.05  # per-image hue jitter of textures (fraction of the hue circle)
    min_visible_fraction: float = 0.015  # a class is named in the caption only above this area


@dataclass
class Scene:
    """One generated scene. Shapes: image H×W×3 uint8, labels/regions H×W."""

    image: np.ndarray
    labels: np.ndarray
    regions: np.ndarray
    caption: str
    present: List[int]  # class ids named in the caption (sorted)


# --------------------------------------------------------------------------------------------
# noise and colour helpers
# --------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, cells: Tuple[int, int]) -> np.ndarray:
    """Value noise: a random ``cells`` grid bicubically upsampled to size×size, about N(0, 1)."""
    grid = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)),
                    dtype=np.float32)


def _shade(base: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Colour ``base`` (3,) modulated by ``intensity`` (H×W, around 1) → H×W×3 in [0, 1]."""
    return np.clip(intensity[..., None] * base[None, None, :], 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# stuff textures: each returns H×W×3 float in [0, 1] covering the whole canvas
# --------------------------------------------------------------------------------------------
def _grass(rng, n, cfg):
    col = _hsv(0.30 + rng.uniform(-1, 1) * cfg.hue_jitter, rng.uniform(0.5, 0.8), rng.uniform(0.45, 0.7))
    streaks = _smooth_noise(rng, n, (max(2, n // 16), n // 2))  # long vertical blades
    fine = rng.standard_normal((n, n)).astype(np.float32)
    return _shade(col, 1.0 + 0.35 * streaks + 0.08 * fine)


def _water(rng, n, cfg):
    col = _hsv(0.58 + rng.uniform(-1, 1) * cfg.hue_jitter, rng.uniform(0.55, 0.85), rng.uniform(0.5, 0.75))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    period = rng.uniform(6.0, 10.0)
    phase = 3.0 * _smooth_noise(rng, n, (4, 4))
    waves = np.sin(2 * math.pi * yy / period + 0.3 * xx / period + phase)
    return _shade(col, 1.0 + 0.25 * waves + 0.05 * _smooth_noise(rng, n, (n // 4, n // 4)))


def _sand(rng, n, cfg):
    col = _hsv(0.11 + rng.uniform(-1, 1) * cfg.hue_jitter, rng.uniform(0.35, 0.6), rng.uniform(0.7, 0.9))
    speckle = rng.standard_normal((n, n)).astype(np.float32)
    dunes = _smooth_noise(rng, n, (3, 3))
    return _shade(col, 1.0 + 0.18 * speckle + 0.1 * dunes)


def _brick(rng, n, cfg):
    col = _hsv(0.02 + rng.uniform(-1, 1) * cfg.hue_jitter, rng.uniform(0.55, 0.8), rng.uniform(0.5, 0.7))
    mortar = _hsv(0.08, 0.1, rng.uniform(0.75, 0.9))
    bh = int(rng.integers(7, 10))
    bw = 2 * bh
    off_y, off_x = rng.integers(0, bh), rng.integers(0, bw)
    yy, xx = np.mgrid[0:n, 0:n]
    row = (yy + off_y) // bh
    xs = (xx + off_x + (row % 2) * (bw // 2)) % bw
    ys = (yy + off_y) % bh
    is_mortar = (ys < 2) | (xs < 2)
    body = _shade(col, 1.0 + 0.1 * rng.standard_normal((n, n)).astype(np.float32))
    out = np.where(is_mortar[..., None], mortar[None, None, :], body)
    return out.astype(np.float32)


def _sky(rng, n, cfg):
    col = _hsv(0.56 + rng.uniform(-1, 1) * cfg.hue_jitter, rng.uniform(0.25, 0.5), rng.uniform(0.8, 0.95))
    clouds = np.clip(_smooth_noise(rng, n, (4, 4)), 0, None)
    white = np.ones(3, np.float32)
    a = np.clip(0.5 * clouds, 0, 0.7)[..., None]
    return ((1 - a) * col[None, None, :] + a * white[None, None, :]).astype(np.float32)


def _wood(rng, n, cfg):
    col = _hsv(0.07 + rng.uniform(-1, 1) * cfg.hue_jitter, rng.uniform(0.5, 0.75), rng.uniform(0.45, 0.65))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    cx, cy = rng.uniform(-n, 2 * n), rng.uniform(-n, 2 * n)
    r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    rings = np.sin(2 * math.pi * r / rng.uniform(4.0, 6.0) + 2.0 * _smooth_noise(rng, n, (3, 3)))
    return _shade(col, 1.0 + 0.22 * rings)


_STUFF_FNS = (_grass, _water, _sand, _brick, _sky, _wood)


# --------------------------------------------------------------------------------------------
# things: each returns (mask H×W bool, appearance H×W×3 float) for one instance
# --------------------------------------------------------------------------------------------
def _polygon_mask(n: int, pts: np.ndarray) -> np.ndarray:
    m = np.zeros((n, n), np.uint8)
    cv2.fillPoly(m, [np.round(pts * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    return m.astype(bool)


def _regular_polygon(cx, cy, r, k, rot, inner=None):
    angles = rot + np.arange(k * (2 if inner else 1)) * (math.pi / k if inner else 2 * math.pi / k)
    radii = np.full(len(angles), r, np.float32)
    if inner:
        radii[1::2] = r * inner
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)


def _thing(rng: np.random.Generator, cls: int, n: int, cfg: WorldConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Mask and appearance of one instance of thing class ``cls`` (0-based in THING_CLASSES)."""
    d = rng.uniform(*cfg.thing_size) * n
    r = d / 2
    cx, cy = rng.uniform(r * 0.6, n - r * 0.6), rng.uniform(r * 0.6, n - r * 0.6)
    rot = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    jit = rng.uniform(-1, 1) * cfg.hue_jitter
    name = THING_CLASSES[cls]
    if name == "ball":  # disc, red-orange, radial shading with a highlight
        mask = dist <= r
        col = _hsv(0.03 + jit, rng.uniform(0.7, 0.95), rng.uniform(0.75, 0.95))
        hx, hy = cx - 0.35 * r, cy - 0.35 * r
        hl = np.sqrt((xx - hx) ** 2 + (yy - hy) ** 2) / max(r, 1.0)
        app = _shade(col, np.clip(1.25 - 0.55 * hl, 0.45, 1.3))
    elif name == "box":  # rotated square, purple, dark outline and a diagonal stripe
        pts = _regular_polygon(cx, cy, r, 4, rot)
        mask = _polygon_mask(n, pts)
        col = _hsv(0.78 + jit, rng.uniform(0.45, 0.7), rng.uniform(0.55, 0.8))
        inner = _polygon_mask(n, _regular_polygon(cx, cy, r * 0.8, 4, rot))
        u = (xx - cx) * math.cos(rot) + (yy - cy) * math.sin(rot)
        stripe = (np.abs(u) < r * 0.12)
        inten = np.where(inner, 1.0, 0.45) * np.where(stripe & inner, 0.75, 1.0)
        app = _shade(col, inten.astype(np.float32))
    elif name == "star":  # five-point star, flat yellow
        mask = _polygon_mask(n, _regular_polygon(cx, cy, r, 5, rot, inner=0.45))
        col = _hsv(0.15 + jit, rng.uniform(0.75, 0.95), rng.uniform(0.85, 1.0))
        app = _shade(col, np.ones((n, n), np.float32))
    elif name == "ring":  # annulus, magenta with a darker rim
        mask = (dist <= r) & (dist >= r * 0.55)
        col = _hsv(0.9 + jit, rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9))
        app = _shade(col, (1.0 - 0.35 * np.abs(dist - 0.775 * r) / (0.225 * r + 1e-6)).astype(np.float32))
    elif name == "cross":  # plus sign, white with a grey checker
        u = (xx - cx) * math.cos(rot) + (yy - cy) * math.sin(rot)
        v = -(xx - cx) * math.sin(rot) + (yy - cy) * math.cos(rot)
        arm = r * 0.32
        mask = ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm))
        col = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.12), rng.uniform(0.88, 1.0))
        checker = ((np.floor(u / 3) + np.floor(v / 3)) % 2 == 0)
        app = _shade(col, np.where(checker, 1.0, 0.8).astype(np.float32))
    elif name == "triangle":  # equilateral triangle, teal, dotted
        mask = _polygon_mask(n, _regular_polygon(cx, cy, r, 3, rot))
        col = _hsv(0.45 + jit, rng.uniform(0.6, 0.9), rng.uniform(0.55, 0.8))
        dots = (np.sin(xx * 1.6) * np.sin(yy * 1.6)) > 0.5
        app = _shade(col, np.where(dots, 0.6, 1.0).astype(np.float32))
    else:  # pragma: no cover - THING_CLASSES and this function are edited together
        raise ValueError(f"unknown thing class {name!r}")
    return mask, app


# --------------------------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------------------------
def _stuff_partition(rng: np.random.Generator, n: int, k: int, warp: float) -> np.ndarray:
    """Warped Voronoi partition of an n×n canvas into ``k`` connected-ish regions, ids 0..k-1."""
    for _ in range(20):
        seeds = rng.uniform(0, n, size=(k, 2)).astype(np.float32)
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        d = np.stack([np.sqrt((xx - sx) ** 2 + (yy - sy) ** 2) for sx, sy in seeds])
        d += warp * n * np.stack([_smooth_noise(rng, n, (5, 5)) for _ in range(k)])
        part = d.argmin(0)
        areas = np.bincount(part.ravel(), minlength=k)
        if areas.min() >= 0.06 * n * n:  # every stuff region clearly visible
            return part
    return part


def make_caption(rng: np.random.Generator, class_ids: Sequence[int]) -> str:
    """A caption naming ``class_ids`` in random order with a random template; no positions."""
    names = []
    for c in rng.permutation(np.asarray(class_ids)):
        name = CLASS_NAMES[int(c)]
        if c >= NUM_STUFF and rng.random() < 0.5:
            name = ("a " if rng.random() < 0.7 else "the ") + name
        names.append(name)
    if len(names) == 1:
        body = names[0]
    else:
        conj = " and " if rng.random() < 0.7 else ", "
        body = ", ".join(names[:-1]) + conj + names[-1]
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    return template.format(body)


def generate_scene(seed: int, cfg: WorldConfig = WorldConfig()) -> Scene:
    """The scene of integer ``seed`` (deterministic across runs and platforms using numpy's PCG64).

    Returns a :class:`Scene` with image H×W×3 uint8, labels H×W uint8 (class ids), regions
    H×W int32 (1..R, one id per stuff region and thing instance) and a caption.
    """
    rng = np.random.default_rng([int(seed), 20240926])
    n = cfg.image_size
    k = int(rng.integers(cfg.min_stuff, cfg.max_stuff + 1))
    stuff = rng.choice(NUM_STUFF, size=k, replace=False)
    part = _stuff_partition(rng, n, k, cfg.boundary_warp)

    image = np.zeros((n, n, 3), np.float32)
    labels = np.zeros((n, n), np.uint8)
    regions = np.zeros((n, n), np.int32)
    for i, c in enumerate(stuff):
        tex = _STUFF_FNS[int(c)](rng, n, cfg)
        sel = part == i
        image[sel] = tex[sel]
        labels[sel] = c
        regions[sel] = i + 1

    num_things = int(rng.integers(cfg.min_things, cfg.max_things + 1))
    for j in range(num_things):
        t = int(rng.integers(len(THING_CLASSES)))
        mask, app = _thing(rng, t, n, cfg)
        image[mask] = app[mask]
        labels[mask] = NUM_STUFF + t
        regions[mask] = k + 1 + j

    # mild global photometric noise, so no class is a single exact colour
    image = image * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, size=image.shape).astype(np.float32)
    image = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)

    # a region id may have been fully occluded; compact ids to 1..R
    ids = np.unique(regions)
    regions = (np.searchsorted(ids, regions) + 1).astype(np.int32)
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES))
    present = [c for c in range(len(CLASS_NAMES)) if counts[c] >= cfg.min_visible_fraction * n * n]
    caption = make_caption(rng, present)
    return Scene(image=image, labels=labels, regions=regions, caption=caption, present=present)


def class_colors() -> np.ndarray:
    """A fixed colour per class for visualisations, (num_classes, 3) uint8."""
    cols = [
        (60, 160, 60), (40, 90, 200), (225, 200, 120), (170, 50, 40), (150, 200, 240), (130, 80, 40),
        (240, 110, 30), (140, 70, 180), (250, 220, 30), (230, 40, 160), (245, 245, 245), (30, 170, 150),
    ]
    return np.array(cols, np.uint8)


def world_metadata() -> Dict[str, object]:
    """Class names and colours, as Detectron2 metadata fields."""
    return {
        "stuff_classes": list(CLASS_NAMES),
        "stuff_colors": [list(map(int, c)) for c in class_colors()],
        "ignore_label": 255,
    }
