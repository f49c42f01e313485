"""Headroom of region consistency: how much grouping a model's dense features by regions could give.

PixelCLIP (Shin et al., NeurIPS 2024) teaches CLIP's dense features to agree inside unlabeled
masks. That can only help where features *averaged inside a region* classify better than the
features of single pixels: the paper's premise that CLIP knows what is in a region but its dense
features are noisy within it. This module measures it, before any fine-tuning:

- **dense** mIoU: every pixel takes the class whose text embedding is closest (cosine) to its
  dense feature (what the model predicts at inference);
- **region-pooled** mIoU: the dense features averaged inside each *true* region (the scene's
  region/instance map), that mean classified, the class painted on the region's pixels: the most
  that perfect consistency inside objects could give;
- **mask-pooled** mIoU: the same with class-agnostic masks (e.g. SAM-like) instead of the true
  regions; pixels no mask covers keep their dense class; where masks overlap, the smaller one decides
  (masks are painted largest first).

mIoU follows Detectron2's ``SemSegEvaluator``: one confusion matrix over the dataset, IoU of every
class present in the ground truth or the prediction, mean over the classes present in the ground
truth (pixels labelled ``ignore_label`` are not counted). Labels are read only here, for the report.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["HeadroomMeter", "mask_pooled_labels", "miou_from_confusion", "regions_to_masks"]


def regions_to_masks(regions: np.ndarray) -> np.ndarray:
    """H×W region ids (0 = no region) -> bool N×H×W, one mask per id > 0, ids in increasing order."""
    ids = [i for i in np.unique(regions) if i != 0]
    if not ids:
        return np.zeros((0,) + regions.shape, bool)
    return np.stack([regions == i for i in ids])


@torch.no_grad()
def mask_pooled_labels(features: torch.Tensor, text: torch.Tensor, masks: torch.Tensor,
                       dense_labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Classify the average feature of every mask and paint it on the mask's pixels.

    Arguments:
        features: C×H×W dense features at the resolution of the masks.
        text: K×C class embeddings (any norm; cosine similarity is used).
        masks: N×H×W bool (may overlap, need not cover the image).
        dense_labels: H×W long, the class of pixels no mask covers (default: the dense arg-max).
    Returns:
        H×W long class ids. Masks are painted largest first, so where they overlap the smaller decides.
    """
    text = F.normalize(text.float(), dim=-1)
    if dense_labels is None:
        dense_labels = torch.einsum("chw,kc->khw", features.float(), text).argmax(0)
    out = dense_labels.clone()
    if len(masks) == 0:
        return out
    m = masks.flatten(1).float()  # N×HW
    area = m.sum(1)
    pooled = (m @ features.flatten(1).float().t()) / area.clamp_min(1.0)[:, None]  # N×C
    cls = (F.normalize(pooled, dim=-1) @ text.t()).argmax(1)  # N
    flat = out.view(-1)
    for i in torch.argsort(area, descending=True, stable=True).tolist():
        if area[i] > 0:
            flat[masks[i].view(-1)] = cls[i]
    return out


def _confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_label: int) -> np.ndarray:
    keep = gt != ignore_label
    idx = gt[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou_from_confusion(conf: np.ndarray) -> float:
    """mIoU in percent of a K×K confusion matrix (rows: ground truth, columns: prediction), averaged over
    the classes present in the ground truth (Detectron2's SemSegEvaluator)."""
    tp = np.diag(conf).astype(np.float64)
    gt = conf.sum(1).astype(np.float64)
    pred = conf.sum(0).astype(np.float64)
    union = gt + pred - tp
    present = gt > 0
    if not present.any():
        return float("nan")
    return 100.0 * float(np.mean(tp[present] / union[present]))


class HeadroomMeter:
    """Accumulates dense, region-pooled and mask-pooled confusion matrices image by image."""

    KINDS = ("dense", "region_pooled", "mask_pooled")

    def __init__(self, num_classes: int, ignore_label: int = 255):
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.confusion = {k: np.zeros((num_classes, num_classes), np.int64) for k in self.KINDS}
        self.num_images = 0

    def add(self, features: torch.Tensor, text: torch.Tensor, labels: np.ndarray, regions: np.ndarray,
            masks: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        """One image.

        Arguments:
            features: C×H×W dense features, already resized to the label map's H×W.
            text: K×C class embeddings (K = num_classes).
            labels: H×W ground-truth class ids (``ignore_label`` = not evaluated).
            regions: H×W true region/instance ids (0 = none).
            masks: N×H×W bool class-agnostic masks (None: the mask-pooled row is not accumulated).
        Returns:
            the three H×W predictions (numpy), by kind.
        """
        if tuple(features.shape[-2:]) != labels.shape or regions.shape != labels.shape:
            raise ValueError(f"features {tuple(features.shape[-2:])}, labels {labels.shape} and regions "
                             f"{regions.shape} must share H×W")
        text = F.normalize(text.float().to(features.device), dim=-1)
        dense = torch.einsum("chw,kc->khw", features.float(), text).argmax(0)
        preds = {"dense": dense,
                 "region_pooled": mask_pooled_labels(features, text, torch.from_numpy(regions_to_masks(regions))
                                                     .to(features.device), dense)}
        if masks is not None:
            preds["mask_pooled"] = mask_pooled_labels(features, text, torch.from_numpy(np.asarray(masks, bool))
                                                      .to(features.device), dense)
        out = {}
        for kind, pred in preds.items():
            pred = pred.cpu().numpy()
            self.confusion[kind] += _confusion(pred, labels, self.num_classes, self.ignore_label)
            out[kind] = pred
        self.num_images += 1
        return out

    def result(self) -> Dict[str, float]:
        """mIoU (percent) of each kind accumulated so far, and the gains of pooling over dense."""
        res = {k: round(miou_from_confusion(c), 2) for k, c in self.confusion.items() if c.any()}
        for k in ("region_pooled", "mask_pooled"):
            if k in res and "dense" in res:
                res[f"{k}_gain"] = round(res[k] - res["dense"], 2)
        res["num_images"] = self.num_images
        return res


def iterate_features(backbone, preprocess, images: Iterable[torch.Tensor], batch_size: int = 32
                     ) -> Iterable[Tuple[int, torch.Tensor]]:
    """Dense features of 3×H×W uint8 images, bilinearly resized back to each image's H×W:
    yields (index, C×H×W) in order."""
    batch, idx = [], []
    for i, im in enumerate(images):
        batch.append(im)
        idx.append(i)
        if len(batch) == batch_size:
            yield from _features_of(backbone, preprocess, batch, idx)
            batch, idx = [], []
    if batch:
        yield from _features_of(backbone, preprocess, batch, idx)


@torch.no_grad()
def _features_of(backbone, preprocess, batch, idx):
    feats = backbone(preprocess.batch(batch))["clip_dense"].float()  # B×C×h×w
    for i, im, f in zip(idx, batch, feats):
        yield i, F.interpolate(f[None], size=tuple(im.shape[-2:]), mode="bilinear", align_corners=False)[0]


def measure_world_headroom(model, root: str, class_names, num_images: int = 0, batch_size: int = 32
                           ) -> Dict[str, float]:
    """Headroom of a PixelCLIP model (built from a config; its CLIP as it is) on the synthetic world's
    validation split under ``root`` (:mod:`pixelclip.synthetic.storage`: images, labels, region maps
    and SAM-like masks).

    Arguments:
        model: a ``PixelCLIP`` meta-architecture (``backbone``, ``preprocess``, ``classifier``).
        root: the world's folder.
        class_names: the vocabulary (the dataset's ``stuff_classes``), in label-id order.
        num_images: evaluate the first ``num_images`` validation images (0 = all).
    Returns:
        ``HeadroomMeter.result()``: ``dense``, ``region_pooled``, ``mask_pooled`` mIoU (percent) and gains.
    """

    import cv2

    from ..data.mask_io import decode_masks, read_mask_file
    from ..data.label_io import read_label_file

    val = os.path.join(root, "val")
    names = sorted(f[:-4] for f in os.listdir(os.path.join(val, "images")) if f.endswith(".png"))
    if num_images > 0:
        names = names[:num_images]
    model.eval()
    with torch.no_grad():
        text = model.classifier(list(class_names)).to(model.device)
    meter = HeadroomMeter(len(class_names))

    def images():
        for name in names:
            path = os.path.join(val, "images", f"{name}.png")
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"cannot read {path}")
            yield torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)))

    for i, feats in iterate_features(model.backbone, model.preprocess, images(), batch_size):
        name = names[i]
        labels = read_label_file(os.path.join(val, "labels", f"{name}.png"))
        regions = read_label_file(os.path.join(val, "regions", f"{name}.png"))
        masks = decode_masks(read_mask_file(os.path.join(val, "masks", f"{name}.json")))
        meter.add(feats, text, labels, regions, masks)
    return meter.result()


def cached_world_headroom(path: str, config: str, opts: List[str], root: str, dataset: str, num_images: int) -> dict:
    """``measure_world_headroom`` of the model a config + overrides builds (the demo's pre-trained CLIP),
    cached in the JSON file ``path`` under its signature (merged config, world, weights file)."""
    import json

    from detectron2.data import MetadataCatalog

    from ..utils.io import atomic_write
    from .jobs import REPO, config_hash, read_json
    from .overlays import load_model, quiet_logs

    signature = {"config": os.path.relpath(config, REPO), "opts": opts, "root": root, "num_images": num_images,
                 "merged_config_sha1": config_hash(config, opts), "weights": _file_id(_opt(opts, "MODEL.PIXELCLIP.CLIP_PRETRAINED"))}
    cached = read_json(path)
    if cached and cached.get("signature") == signature:
        logging.getLogger("synthetic_demo").info("  headroom               already done (%s), skipped", path)
        return cached["headroom"]
    with quiet_logs():
        _, model = load_model(config, opts, "")
        headroom = measure_world_headroom(model, root, MetadataCatalog.get(dataset).stuff_classes, num_images)
    atomic_write(path, json.dumps({"signature": signature, "headroom": headroom}, indent=1))
    return headroom


def _opt(opts: List[str], key: str) -> str:
    for k, v in zip(opts[::2], opts[1::2]):
        if k == key:
            return v
    return ""


def _file_id(path: str) -> str:
    """size and mtime of a file, so a re-pre-trained CLIP invalidates cached diagnostics."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}-{int(st.st_mtime)}"
