"""Contrastive pre-training of a tiny CLIP on the synthetic world's image/caption pairs only.

This is CLIP's recipe (Radford et al. 2021) at toy scale: a symmetric InfoNCE loss between the
image embedding (CLS token) and the caption embedding (EOT token) over the batch, learnable
temperature, AdamW with warm-up and cosine decay. The model sees images and captions that name
the classes present; it is never told where they are. The result is the "CLIP" of the demo:
good at image-level recognition, with dense features that are whatever such training gives.

Everything is a function of the seed: the scene pool, the batch order, the augmentations and the
captions of step ``s`` depend on ``(seed, s)`` only, so a run that resumes from its periodic
state file ends with the same weights as an uninterrupted one (up to float non-associativity
across thread counts).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from ..config import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD
from ..utils.io import atomic_write
from .world import CLASS_NAMES, WorldConfig, make_caption, generate_scene

logger = logging.getLogger(__name__)

# Scene seeds: pre-training uses [PRETRAIN_SEED_BASE, ...), far from the datasets' ranges.
PRETRAIN_SEED_BASE = 10_000_000


@dataclass
class PretrainConfig:
    """Pre-training hyper-parameters (defaults: the shipped / demo tiny CLIP)."""

    model_name: str = "PixelCLIP-Synthetic-ViT"
    seed: int = 0
    steps: int = 800
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    pool_size: int = 4000  # distinct scenes; each is seen under 8 flips/rotations and fresh captions
    eval_size: int = 300  # held-out scenes for the image-level recognition check
    num_threads: int = 0  # torch threads; 0 leaves torch's default
    state_period: int = 100  # steps between resumable state files
    # Pre-training scenes are 64 px (8×8 patches): the same world and textures on a smaller canvas,
    # as CLIP pre-trains at 224 px and PixelCLIP runs it at 320 px (positions interpolated).
    world: WorldConfig = field(default_factory=lambda: WorldConfig(image_size=64))


def _normalise(images: np.ndarray) -> torch.Tensor:
    """B×H×W×3 uint8 -> B×3×H×W float, CLIP-normalised (the same constants as MODEL.PIXEL_MEAN/STD)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    mean = torch.tensor(CLIP_PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_PIXEL_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def build_pool(size: int, seed_base: int, world: WorldConfig) -> Dict[str, object]:
    """Generate ``size`` scenes: images N×H×W×3 uint8 and the class ids each caption may name."""
    images, present = [], []
    t0 = time.time()
    for i in range(size):
        scene = generate_scene(seed_base + i, world)
        images.append(scene.image)
        present.append(scene.present)
        if (i + 1) % 1000 == 0:
            logger.info("scene pool: %d/%d (%.0fs)", i + 1, size, time.time() - t0)
    return {"images": np.stack(images), "present": present}


def _batch(pool: Dict[str, object], cfg: PretrainConfig, step: int):
    """Images (B×3×H×W) and captions of step ``step``: random scenes, a random dihedral transform
    each (flips and 90° rotations keep the caption true), a freshly sampled caption each."""
    rng = np.random.default_rng([cfg.seed, step, 3])
    idx = rng.integers(0, len(pool["present"]), size=cfg.batch_size)
    imgs = pool["images"][idx]
    k = rng.integers(0, 4, size=cfg.batch_size)
    flip = rng.random(cfg.batch_size) < 0.5
    out = np.empty_like(imgs)
    for b in range(cfg.batch_size):
        im = np.rot90(imgs[b], k[b])
        out[b] = im[:, ::-1] if flip[b] else im
    captions = [make_caption(rng, pool["present"][i]) for i in idx]
    return _normalise(out), captions


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def zero_shot_recognition(model, tokenizer, images: np.ndarray, present: Sequence[Sequence[int]],
                          template: str = "a photo of {}.", batch_size: int = 128) -> Dict[str, float]:
    """Image-level multi-label recognition with class-name prompts.

    Returns, in percent: ``mAP`` (mean over classes of the average precision of the image-text
    similarity ranking images by whether the class is present), ``top1`` (images whose
    best-scoring class is present) and ``precision_at_n`` (per image, the share of its n
    best-scoring classes that are present, n = number of classes present).
    """
    model.eval()
    text = model.encode_text(tokenizer([template.format(c) for c in CLASS_NAMES]), normalize=True)
    scores = []
    for s in range(0, len(images), batch_size):
        feats = model.encode_image(_normalise(images[s:s + batch_size]), normalize=True)
        scores.append(feats @ text.T)
    scores = torch.cat(scores).numpy()
    truth = np.zeros_like(scores, dtype=bool)
    for i, p in enumerate(present):
        truth[i, list(p)] = True
    aps = []
    for c in range(scores.shape[1]):
        if truth[:, c].any():
            order = np.argsort(-scores[:, c])
            hits = truth[order, c]
            precision = np.cumsum(hits) / (np.arange(len(hits)) + 1)
            aps.append(float((precision * hits).sum() / hits.sum()))
    top1 = float(truth[np.arange(len(scores)), scores.argmax(1)].mean())
    ranks = np.argsort(-scores, axis=1)
    p_at_n = [truth[i, ranks[i, :truth[i].sum()]].mean() for i in range(len(scores)) if truth[i].any()]
    return {"mAP": 100 * float(np.mean(aps)), "top1": 100 * top1, "precision_at_n": 100 * float(np.mean(p_at_n))}


def save_clip_checkpoint(model: torch.nn.Module, path: str, meta: Dict[str, object]) -> None:
    """Write an open_clip-loadable checkpoint ``{"state_dict": fp16 tensors, "meta": ...}`` atomically."""
    state = {k: (v.half() if v.is_floating_point() else v).clone() for k, v in model.state_dict().items()}
    atomic_write(path, writer=lambda f: torch.save({"state_dict": state, "meta": meta}, f))


def pretrain_synthetic_clip(cfg: PretrainConfig, output_path: str) -> Dict[str, object]:
    """Pre-train the tiny CLIP and write it to ``output_path`` (an open_clip checkpoint).

    Resumes from ``output_path + ".state"`` when present (written every ``cfg.state_period`` steps).
    Returns the run's summary: config, losses, image-level recognition, seconds.
    """
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    model = open_clip.create_model(cfg.model_name, pretrained=None)
    tokenizer = open_clip.get_tokenizer(cfg.model_name)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)

    state_path = output_path + ".state"
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    start, losses = 0, []
    if os.path.isfile(state_path):
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("config") == _config_dict(cfg):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, losses = int(state["step"]), list(state["losses"])
            logger.info("resuming pre-training from %s at step %d", state_path, start)
        else:
            logger.warning("ignoring %s: it was written with a different configuration", state_path)

    t0 = time.time()
    pool = build_pool(cfg.pool_size, PRETRAIN_SEED_BASE + cfg.seed * cfg.pool_size * 4, cfg.world)
    logger.info("scene pool of %d built in %.1fs", cfg.pool_size, time.time() - t0)
    t_train = time.time()
    for step in range(start, cfg.steps):
        for g in optimizer.param_groups:
            g["lr"] = _lr_at(step, cfg)
        images, captions = _batch(pool, cfg, step)
        img_f, txt_f, logit_scale = model(images, tokenizer(captions))[:3]
        logits = logit_scale * img_f @ txt_f.T
        target = torch.arange(len(logits))
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        done = step + 1
        if done % 20 == 0 or done == cfg.steps:
            rate = (time.time() - t_train) / max(1, done - start)
            logger.info("pre-train step %d/%d  loss %.3f  lr %.2e  ETA %.0fs", done, cfg.steps,
                        np.mean(losses[-20:]), _lr_at(step, cfg), rate * (cfg.steps - done))
        if done % cfg.state_period == 0 and done < cfg.steps:
            state = {"config": _config_dict(cfg), "model": model.state_dict(),
                     "optimizer": optimizer.state_dict(), "step": done, "losses": losses}
            atomic_write(state_path, writer=lambda f: torch.save(state, f))

    eval_pool = build_pool(cfg.eval_size, PRETRAIN_SEED_BASE - 1_000_000, cfg.world)
    recog = zero_shot_recognition(model, tokenizer, eval_pool["images"], eval_pool["present"])
    summary = {
        "config": _config_dict(cfg),
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
        "recognition": recog,
        "seconds": round(time.time() - t0, 1),
    }
    logger.info("tiny CLIP image-level recognition on %d held-out scenes: mAP %.1f, top-1 %.1f, P@n %.1f",
                cfg.eval_size, recog["mAP"], recog["top1"], recog["precision_at_n"])
    save_clip_checkpoint(model, output_path, {"summary": summary, "losses": [round(x, 4) for x in losses]})
    if os.path.isfile(state_path):
        os.remove(state_path)
    return summary


def _config_dict(cfg: PretrainConfig) -> Dict[str, object]:
    d = asdict(cfg)
    d.pop("num_threads")
    d.pop("state_period")
    d["world"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["world"].items()}
    return d
