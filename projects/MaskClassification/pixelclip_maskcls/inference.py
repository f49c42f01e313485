"""Per-image inference of zero-shot mask classification beyond pooling (PixelCLIP, Sec. 4).

* **crops** (ZegFormer, Ding et al. 2022): cut the mask's box (and/or zero its background) out of the
  CLIP-normalised image; the crop's global image embedding names the mask;
* **geometric ensemble** (FC-CLIP, Yu et al. 2023, Eq. 4) with an in-vocabulary classifier's scores;
* **painting**: per-mask class probabilities into ``sem_seg`` (MaskFormer's semantic inference) and
  ``panoptic_seg`` segments where masks overlap (Mask2Former's panoptic inference);
* **proposals**: class-agnostic masks (and class scores) from any Detectron2 model's output.

The dense way (mask-average pooling of dense features, cosine scoring) is PixelCLIP's own and lives
in the core, ``pixelclip/modeling/pooling.py`` and ``scoring.py``. All functions here are stateless and work on
one image; the registered meta-architecture is ``ZeroShotMaskClassifier`` (zero_shot_mask_classifier.py).
"""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .config import check_choice


# ---------------------------------------------------------------------------------------- crops
def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of N×H×W bool masks as pixel edges ``(x0, y0, x1, y1)`` (x1, y1 exclusive), N×4
    float. An empty mask gets the whole image (as in ZegFormer)."""
    n, h, w = masks.shape
    boxes = masks.new_tensor([0, 0, w, h], dtype=torch.float32).repeat(n, 1)
    if n == 0:
        return boxes
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # N×H, N×W
    nonempty = rows.any(dim=1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).min(dim=1).values
    y1 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x0 = torch.where(cols, ar_w, w).min(dim=1).values
    x1 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    tight = torch.stack([x0, y0, x1, y1], dim=1).float()
    boxes[nonempty] = tight[nonempty]
    return boxes


def _box_grids(boxes: torch.Tensor, image_hw: Tuple[int, int], size: int) -> torch.Tensor:
    """Sampling grids N×size×size×2 (``grid_sample``, align_corners=False) reading each box."""
    h, w = image_hw
    u0, u1 = 2 * boxes[:, 0] / w - 1, 2 * boxes[:, 2] / w - 1
    v0, v1 = 2 * boxes[:, 1] / h - 1, 2 * boxes[:, 3] / h - 1
    theta = boxes.new_zeros((len(boxes), 2, 3))
    theta[:, 0, 0], theta[:, 0, 2] = (u1 - u0) / 2, (u1 + u0) / 2
    theta[:, 1, 1], theta[:, 1, 2] = (v1 - v0) / 2, (v1 + v0) / 2
    return F.affine_grid(theta, [len(boxes), 1, size, size], align_corners=False)


def crop_masked_regions(image: torch.Tensor, masks: torch.Tensor, size: int, style: str = "cropmask") -> torch.Tensor:
    """ZegFormer-style CLIP inputs, one per mask.

    Arguments:
        image: 3×Hi×Wi, CLIP-normalised (zero = CLIP's mean colour).
        masks: N×H×W bool, covering the same extent as ``image`` (any resolution).
        size: side of the square crops.
        style: ``crop`` (the mask's box), ``mask`` (the whole image, pixels outside the mask set to
            zero) or ``cropmask`` (the box, outside pixels zeroed; ZegFormer's default).
    Returns:
        N×3×size×size.
    """
    check_choice("CROP_STYLE", style)
    n = masks.shape[0]
    if n == 0:
        return image.new_zeros((0, 3, size, size))
    h, w = masks.shape[-2:]
    if style == "mask":
        boxes = masks.new_tensor([0, 0, w, h], dtype=torch.float32).repeat(n, 1)
    else:
        boxes = mask_boxes(masks)
    boxes = boxes.to(image.device)
    grid = _box_grids(boxes, (h, w), size).to(image.dtype)  # normalised coords: valid for image and masks alike
    crops = F.grid_sample(image[None].expand(n, -1, -1, -1), grid, mode="bilinear", align_corners=False)
    if style in ("mask", "cropmask"):
        inside = F.grid_sample(masks[:, None].to(image.device, image.dtype), grid, mode="nearest", align_corners=False)
        crops = crops * inside
    return crops



# ---------------------------------------------------------------------------------------- scores
def geometric_ensemble(in_vocab_probs: torch.Tensor, clip_probs: torch.Tensor, seen: torch.Tensor,
                       alpha: float, beta: float, eps: float = 1e-8) -> torch.Tensor:
    """FC-CLIP's geometric ensemble (Yu et al. 2023, Eq. 4), renormalised over classes.

    ``p ∝ p_in^(1-α) · p_clip^α`` on seen classes and ``p_in^(1-β) · p_clip^β`` on unseen ones.

    Arguments:
        in_vocab_probs, clip_probs: N×K class probabilities.
        seen: K bool, the classes the in-vocabulary classifier was trained on.
    Returns:
        N×K probabilities (rows sum to 1).
    """
    seen = seen.to(clip_probs.device, clip_probs.dtype)
    w = seen * alpha + (1 - seen) * beta  # K
    log_p = (1 - w) * in_vocab_probs.clamp_min(eps).log() + w * clip_probs.clamp_min(eps).log()
    return log_p.softmax(dim=-1)


def semantic_scores(probs: torch.Tensor, masks: torch.Tensor, fill: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Paint per-mask class probabilities into a K×H×W map (MaskFormer's semantic inference,
    ``Σ_n p_n,k · m_n``); pixels covered by no mask take ``fill`` (K×H×W) when given, else 0.

    Arguments:
        probs: N×K. masks: N×H×W bool.
    """
    k = probs.shape[1]
    h, w = masks.shape[-2:]
    if masks.shape[0]:
        scores = torch.einsum("nk,nhw->khw", probs.float(), masks.to(probs.device).float())
    else:
        scores = probs.new_zeros((k, h, w), dtype=torch.float32)
    if fill is not None:
        covered = masks.any(dim=0).to(scores.device) if masks.shape[0] else torch.zeros((h, w), dtype=torch.bool,
                                                                                        device=scores.device)
        scores = torch.where(covered[None], scores, fill.to(scores.dtype))
    return scores


def panoptic_from_masks(probs: torch.Tensor, masks: torch.Tensor, overlap_threshold: float = 0.8,
                        thing_classes: Optional[Sequence[int]] = None) -> Tuple[torch.Tensor, List[Dict]]:
    """Panoptic-style segments from (possibly overlapping) classified masks (Mask2Former's
    panoptic inference): every pixel goes to the mask with the highest ``score · mask``; a mask keeps
    a segment only if at least ``overlap_threshold`` of it stays visible; stuff segments of one class
    merge.

    Arguments:
        probs: N×K class probabilities. masks: N×H×W bool.
        thing_classes: class ids that are things (never merged); None = all things.
    Returns:
        ``panoptic_seg`` H×W int32 (0 = no segment) and ``segments_info`` dicts with ``id``,
        ``category_id``, ``isthing``, ``score``, ``area`` and ``mask_index``.
    """
    h, w = masks.shape[-2:]
    panoptic = torch.zeros((h, w), dtype=torch.int32, device=masks.device)
    infos: List[Dict] = []
    if masks.shape[0] == 0:
        return panoptic, infos
    scores, labels = probs.max(dim=1)
    weighted = scores.to(masks.device)[:, None, None] * masks.float()
    owner = weighted.argmax(dim=0)
    covered = masks.any(dim=0)
    things = None if thing_classes is None else set(int(c) for c in thing_classes)
    stuff_ids: Dict[int, int] = {}
    for n in torch.argsort(scores, descending=True).tolist():
        area = int(masks[n].sum())
        visible = (owner == n) & masks[n] & covered
        kept = int(visible.sum())
        if area == 0 or kept == 0 or kept / area < overlap_threshold:
            continue
        cls = int(labels[n])
        isthing = things is None or cls in things
        if not isthing and cls in stuff_ids:
            seg_id = stuff_ids[cls]
            panoptic[visible] = seg_id
            info = next(i for i in infos if i["id"] == seg_id)
            info["area"] += kept
            continue
        seg_id = len(infos) + 1
        panoptic[visible] = seg_id
        if not isthing:
            stuff_ids[cls] = seg_id
        infos.append({"id": seg_id, "category_id": cls, "isthing": isthing, "score": float(scores[n]),
                      "area": kept, "mask_index": n})
    return panoptic, infos


# ---------------------------------------------------------------------------------------- proposals
def _binarize(masks: torch.Tensor, threshold: float) -> torch.Tensor:
    if masks.dtype == torch.bool:
        return masks
    m = masks.float()
    if m.numel() and (m.min() < 0 or m.max() > 1):  # logits
        m = m.sigmoid()
    return m > threshold


def _smoothed_one_hot(classes: torch.Tensor, scores: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``score`` on the predicted class, the rest spread evenly: N×K probabilities."""
    scores = scores.float().clamp(1e-3, 1 - 1e-3)
    rest = (1 - scores) / max(num_classes - 1, 1)
    probs = rest[:, None].expand(-1, num_classes).clone()
    probs[torch.arange(len(classes), device=probs.device), classes.to(probs.device)] = scores
    return probs


def masks_from_output(output: Mapping, num_classes: int, mask_threshold: float = 0.5,
                      score_threshold: float = 0.0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Class-agnostic masks (and in-vocabulary class probabilities, if any) from one output of a
    Detectron2 model.

    Understands ``instances`` (``pred_masks``; ``scores`` and ``pred_classes`` become smoothed
    one-hot probabilities), ``pred_masks`` N×H×W with optional ``pred_logits`` N×K or N×(K+1)
    (last = void), and ``panoptic_seg`` (one mask per segment).

    Returns:
        N×H×W bool masks and N×K probabilities or None (none, or the classes do not fit K).
    """
    if "instances" in output:
        inst = output["instances"]
        if not inst.has("pred_masks"):
            raise ValueError("the proposal model's instances have no pred_masks (is it a mask model?)")
        masks = _binarize(inst.pred_masks, mask_threshold)
        keep = torch.ones(len(inst), dtype=torch.bool, device=masks.device)
        probs = None
        if inst.has("scores"):
            keep &= inst.scores.to(masks.device) >= score_threshold
        if inst.has("pred_classes") and inst.has("scores") and len(inst):
            classes = inst.pred_classes.long().to(masks.device)
            if int(classes.max()) < num_classes:
                probs = _smoothed_one_hot(classes, inst.scores.to(masks.device), num_classes)
        return masks[keep], (probs[keep] if probs is not None else None)
    if "pred_masks" in output:
        masks = _binarize(output["pred_masks"], mask_threshold)
        probs = None
        logits = output.get("pred_logits")
        if logits is not None:
            p = logits.float().softmax(dim=-1)
            if p.shape[-1] == num_classes + 1:  # drop the void column, renormalise
                p = p[:, :-1] / p[:, :-1].sum(dim=-1, keepdim=True).clamp_min(1e-8)
            probs = p if p.shape[-1] == num_classes else None
            if probs is not None and score_threshold > 0:
                keep = probs.max(dim=-1).values >= score_threshold
                return masks[keep.to(masks.device)], probs[keep]
        return masks, probs
    if "panoptic_seg" in output:
        seg, infos = output["panoptic_seg"]
        masks = torch.stack([seg == info["id"] for info in infos]) if infos else \
            torch.zeros((0,) + tuple(seg.shape), dtype=torch.bool, device=seg.device)
        probs = None
        if infos and all("category_id" in i for i in infos):
            classes = torch.tensor([int(i["category_id"]) for i in infos])
            scores = torch.tensor([float(i.get("score", 1.0)) for i in infos])
            if int(classes.max()) < num_classes:
                probs = _smoothed_one_hot(classes, scores, num_classes)
        return masks, probs
    raise ValueError(f"cannot find masks in the proposal model's output (keys: {sorted(output)}); expected "
                     "'instances' with pred_masks, 'pred_masks', or 'panoptic_seg'")
