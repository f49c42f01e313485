"""The synthetic world on disk, in the layouts the real datasets use.

::

    <root>/world.json                       the spec below; written last (its presence = complete)
    <root>/train/images/000123.png          unlabeled training images
    <root>/train/masks/000123.json          SA-1B-style masks (pixelclip.data.mask_io), no labels
    <root>/train/random_masks/000123.json   the control: the same masks moved at random
    <root>/val/images/000123.png            labelled validation images
    <root>/val/labels/000123.png            class-id maps (uint8, 255 = ignore; none here)
    <root>/val/regions/000123.png           region/instance ids (uint8, no classes): for the headroom
                                            diagnostic (pixelclip/synthetic/headroom.py), never for training
    <root>/val/masks/000123.json            SAM-like masks of the validation images (as for training)

Generation is deterministic (scene ``i`` of the training split is ``generate_scene(i)``, of the
validation split ``generate_scene(VAL_SEED_BASE + i)``), each file is written atomically, and a
file lock lets concurrent processes (two fine-tuning runs started together) share one build.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict

import cv2
import numpy as np

from ..data.mask_io import encode_masks, write_mask_file
from ..utils.io import atomic_write
from .masks import MaskNoiseConfig, mask_scores, random_masks_like, sam_like_masks
from .world import CLASS_NAMES, CLASS_PARTS, WorldConfig, generate_scene

logger = logging.getLogger(__name__)

TRAIN_SEED_BASE = 0
VAL_SEED_BASE = 1_000_000  # validation scenes never overlap training or pre-training scenes
LAYOUT_VERSION = 2  # 2: the world of parts, with val/regions and val/masks


@dataclass(frozen=True)
class WorldSpec:
    """What is on disk: split sizes, world and mask-noise parameters."""

    num_train: int = 1000
    num_val: int = 200
    world: WorldConfig = field(default_factory=WorldConfig)
    masks: MaskNoiseConfig = field(default_factory=MaskNoiseConfig)

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["world"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["world"].items()}
        d["classes"] = list(CLASS_NAMES)
        d["class_parts"] = [list(p) for p in CLASS_PARTS]
        d["layout"] = LAYOUT_VERSION
        return d


def _atomic_png(path: str, array: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    atomic_write(path, png.tobytes())


def _write_train(root: str, i: int, spec: WorldSpec) -> None:
    name = f"{i:06d}"
    scene = generate_scene(TRAIN_SEED_BASE + i, spec.world)
    h, w = scene.labels.shape
    info = {"file_name": f"{name}.png", "height": h, "width": w, "image_id": name}
    masks = sam_like_masks(scene.regions, TRAIN_SEED_BASE + i, spec.masks)
    if len(masks) == 0:  # a scene always has regions; keep the file valid for the mapper anyway
        masks = np.ones((1, h, w), bool)
    write_mask_file(os.path.join(root, "train", "masks", f"{name}.json"), info,
                    encode_masks(masks, mask_scores(len(masks), i)))
    control = random_masks_like(masks, TRAIN_SEED_BASE + i)
    write_mask_file(os.path.join(root, "train", "random_masks", f"{name}.json"), info,
                    encode_masks(control, mask_scores(len(control), i)))
    _atomic_png(os.path.join(root, "train", "images", f"{name}.png"), scene.image[:, :, ::-1])


def _write_val(root: str, i: int, spec: WorldSpec) -> None:
    name = f"{i:06d}"
    scene = generate_scene(VAL_SEED_BASE + i, spec.world)
    h, w = scene.labels.shape
    masks = sam_like_masks(scene.regions, VAL_SEED_BASE + i, spec.masks)
    info = {"file_name": f"{name}.png", "height": h, "width": w, "image_id": name}
    write_mask_file(os.path.join(root, "val", "masks", f"{name}.json"), info,
                    encode_masks(masks, mask_scores(len(masks), VAL_SEED_BASE + i)))
    if scene.regions.max() > 255:
        raise ValueError(f"scene {VAL_SEED_BASE + i} has {scene.regions.max()} regions; the 8-bit region file "
                         "holds at most 255")
    _atomic_png(os.path.join(root, "val", "regions", f"{name}.png"), scene.regions.astype(np.uint8))
    _atomic_png(os.path.join(root, "val", "labels", f"{name}.png"), scene.labels)
    _atomic_png(os.path.join(root, "val", "images", f"{name}.png"), scene.image[:, :, ::-1])


def _complete(root: str, spec: WorldSpec) -> bool:
    marker = os.path.join(root, "world.json")
    if not os.path.isfile(marker):
        return False
    with open(marker) as f:
        found = json.load(f)
    if found != json.loads(json.dumps(spec.to_dict())):
        raise ValueError(
            f"{marker}: the synthetic world on disk was generated with other parameters than the ones "
            f"registered ({found.get('num_train')} train / {found.get('num_val')} val images, ...); "
            f"delete {root} to regenerate it, or register the world under another root")
    return True


def ensure_world(root: str, spec: WorldSpec = WorldSpec()) -> str:
    """Generate the world under ``root`` unless it is complete already; return ``root``.

    Safe to call from several processes at once (an exclusive lock on ``<root>.lock``); an
    interrupted build resumes: files already written are kept (they are deterministic).
    """
    root = os.path.abspath(root)
    if _complete(root, spec):
        return root
    os.makedirs(os.path.dirname(root) or ".", exist_ok=True)
    with open(root + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(root, spec):
            return root
        for sub in ("train/images", "train/masks", "train/random_masks", "val/images", "val/labels", "val/regions",
                    "val/masks"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        t0 = time.time()
        total = spec.num_train + spec.num_val
        logger.info("generating the synthetic world under %s (%d train, %d val images)", root,
                    spec.num_train, spec.num_val)
        for k in range(total):
            if k < spec.num_train:
                if not os.path.isfile(os.path.join(root, "train", "images", f"{k:06d}.png")):
                    _write_train(root, k, spec)
            else:
                j = k - spec.num_train
                if not os.path.isfile(os.path.join(root, "val", "images", f"{j:06d}.png")):
                    _write_val(root, j, spec)
            if (k + 1) % 250 == 0:
                rate = (time.time() - t0) / (k + 1)
                logger.info("synthetic world: %d/%d images, ETA %.0fs", k + 1, total, rate * (total - k - 1))
        atomic_write(os.path.join(root, "world.json"), json.dumps(spec.to_dict(), indent=1))
        logger.info("synthetic world ready in %.1fs", time.time() - t0)
    return root
