"""A procedural world of stuff and things built from shared parts, with captions.

It models the premise of PixelCLIP (Shin et al., NeurIPS 2024, Sec. 1): CLIP knows *what* is in
an image, but its dense features are noisy *within* objects, and SAM's masks group the pixels of
one object. Here every class is made of **parts whose local appearance is shared across classes**:

- six part types (:data:`PART_TYPES`), each a local pattern with a characteristic hue (stripes,
  checker, dots, speckle, grid, flat);
- every class is one *pair* of part types (:data:`CLASS_PARTS`), its region a blob-like mix of the
  two; each part type belongs to four classes (two stuff, two things), so a patch that sees one
  part is ambiguous between four classes, while the region as a whole (the pair) is not;
- stuff regions (a warped Voronoi partition) and things (shapes: ball, box, star, ring, cross,
  triangle) pasted on top; a thing's class is its pair of parts (its shape also tells it).

Each scene is a function of one integer seed and comes with

- the RGB image (H×W×3, uint8),
- the ground-truth label map (H×W, uint8, class ids into :data:`CLASS_NAMES`),
- the region/instance map (H×W, int32, one id per stuff region and per thing instance),
- an image-level caption that names the classes present (the wholes, never the parts), in random
  order, with a random template; it never says where (no positions, sizes or counts).

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

# Part types: a local pattern and a characteristic hue (fraction of the hue circle).
PART_TYPES: Tuple[str, ...] = ("stripes", "checker", "dots", "speckle", "grid", "flat")
PART_HUES: Tuple[float, ...] = (0.0, 0.33, 0.62, 0.14, 0.8, 0.5)
# The two part types of each class, in CLASS_NAMES order. The 12 pairs are the complete graph on the
# six parts minus a perfect matching {0-1, 2-3, 4-5}, split into two 6-cycles (stuff, things): every
# part type is in exactly two stuff and two thing classes, and no two classes share both parts.
CLASS_PARTS: Tuple[Tuple[int, int], ...] = (
    (0, 2), (2, 4), (4, 1), (1, 3), (3, 5), (5, 0),  # grass, water, sand, brick, sky, wood
    (0, 3), (0, 4), (1, 2), (1, 5), (2, 5), (3, 4),  # ball, box, star, ring, cross, triangle
)

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
    max_stuff: int = 3
    min_things: int = 1  # thing instances per image
    max_things: int = 2
    thing_size: Tuple[float, float] = (0.35, 0.55)  # object diameter as a fraction of the side
    boundary_warp: float = 0.12  # amplitude of the region-boundary warp (fraction of the side)
    hue_jitter: float = 0.04  # per-part hue jitter (fraction of the hue circle)
    stuff_part_scale: float = 14.0  # pixels; size of the part blobs inside a stuff region
    thing_part_scale: float = 9.0  # pixels; size of the part blobs inside a thing
    part_fraction: Tuple[float, float] = (0.35, 0.65)  # share of a region taken by its first part
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


# --------------------------------------------------------------------------------------------
# parts: each returns H×W×3 float in [0, 1] covering the whole canvas
# --------------------------------------------------------------------------------------------
def _part_texture(rng: np.random.Generator, part: int, n: int, cfg: WorldConfig) -> np.ndarray:
    """One instance of part type ``part``: its pattern at a random orientation and phase, in its hue."""
    col = _hsv(PART_HUES[part] + rng.uniform(-1, 1) * cfg.hue_jitter, rng.uniform(0.5, 0.85), rng.uniform(0.6, 0.9))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta) + rng.uniform(0, 50)
    v = -xx * math.sin(theta) + yy * math.cos(theta) + rng.uniform(0, 50)
    name = PART_TYPES[part]
    if name == "stripes":
        inten = 1.0 + 0.3 * np.tanh(3.0 * np.sin(2 * math.pi * u / rng.uniform(5.0, 7.0)))
    elif name == "checker":
        c = rng.uniform(3.0, 4.5)
        inten = np.where((np.floor(u / c) + np.floor(v / c)) % 2 == 0, 1.15, 0.7)
    elif name == "dots":
        s = rng.uniform(5.0, 6.5)
        d = np.hypot(u - s * np.round(u / s), v - s * np.round(v / s))
        inten = np.where(d < 1.5, 0.5, 1.05)
    elif name == "speckle":
        inten = 1.0 + 0.22 * rng.standard_normal((n, n)).astype(np.float32)
    elif name == "grid":
        s = rng.uniform(6.0, 8.0)
        inten = np.where((np.mod(u, s) < 1.3) | (np.mod(v, s) < 1.3), 0.5, 1.05)
    elif name == "flat":
        inten = 1.0 + 0.06 * _smooth_noise(rng, n, (max(2, n // 24),) * 2)
    else:  # pragma: no cover - PART_TYPES and this function are edited together
        raise ValueError(f"unknown part type {name!r}")
    return np.clip(inten.astype(np.float32)[..., None] * col[None, None, :], 0.0, 1.0)


def _paint_class(rng: np.random.Generator, image: np.ndarray, region: np.ndarray, cls: int, scale: float,
                 cfg: WorldConfig) -> None:
    """Paint ``region`` (H×W bool) of ``image`` with class ``cls``: blobs of its two parts."""
    n = image.shape[0]
    cells = max(2, int(round(n / scale)))
    field = _smooth_noise(rng, n, (cells, cells))
    inside = field[region]
    first = field > np.quantile(inside, 1.0 - rng.uniform(*cfg.part_fraction)) if inside.size else field > 0
    a, b = CLASS_PARTS[cls]
    if rng.random() < 0.5:
        a, b = b, a
    image[region & first] = _part_texture(rng, a, n, cfg)[region & first]
    image[region & ~first] = _part_texture(rng, b, n, cfg)[region & ~first]


# --------------------------------------------------------------------------------------------
# things: shapes (class-specific), painted with their class's parts
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


def _thing_mask(rng: np.random.Generator, cls: int, n: int, cfg: WorldConfig) -> np.ndarray:
    """H×W bool mask of one instance of thing class ``cls`` (0-based in THING_CLASSES)."""
    r = rng.uniform(*cfg.thing_size) * n / 2
    cx, cy = rng.uniform(r * 0.6, n - r * 0.6), rng.uniform(r * 0.6, n - r * 0.6)
    rot = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    name = THING_CLASSES[cls]
    if name == "ball":
        return dist <= r
    if name == "box":
        return _polygon_mask(n, _regular_polygon(cx, cy, r, 4, rot))
    if name == "star":
        return _polygon_mask(n, _regular_polygon(cx, cy, r, 5, rot, inner=0.5))
    if name == "ring":
        return (dist <= r) & (dist >= r * 0.5)
    if name == "cross":
        u = (xx - cx) * math.cos(rot) + (yy - cy) * math.sin(rot)
        v = -(xx - cx) * math.sin(rot) + (yy - cy) * math.cos(rot)
        arm = r * 0.36
        return ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm))
    if name == "triangle":
        return _polygon_mask(n, _regular_polygon(cx, cy, r, 3, rot))
    raise ValueError(f"unknown thing class {name!r}")  # pragma: no cover


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
    rng = np.random.default_rng([int(seed), 20241106])
    n = cfg.image_size
    k = int(rng.integers(cfg.min_stuff, cfg.max_stuff + 1))
    stuff = rng.choice(NUM_STUFF, size=k, replace=False)
    part = _stuff_partition(rng, n, k, cfg.boundary_warp)

    image = np.zeros((n, n, 3), np.float32)
    labels = np.zeros((n, n), np.uint8)
    regions = np.zeros((n, n), np.int32)
    for i, c in enumerate(stuff):
        sel = part == i
        _paint_class(rng, image, sel, int(c), cfg.stuff_part_scale, cfg)
        labels[sel] = c
        regions[sel] = i + 1

    num_things = int(rng.integers(cfg.min_things, cfg.max_things + 1))
    for j in range(num_things):
        t = int(rng.integers(len(THING_CLASSES)))
        mask = _thing_mask(rng, t, n, cfg)
        _paint_class(rng, image, mask, NUM_STUFF + t, cfg.thing_part_scale, cfg)
        labels[mask] = NUM_STUFF + t
        regions[mask] = k + 1 + j

    # mild global photometric noise, so no part is a single exact colour
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
