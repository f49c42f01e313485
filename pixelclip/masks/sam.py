"""Unlabeled masks from SAM's automatic mask generator (the masks SA-1B ships with).

SAM (Kirillov et al., 2023) prompted with a grid of points, filtered by predicted IoU and
stability, de-duplicated by NMS: ``segment_anything.SamAutomaticMaskGenerator``. Its ``coco_rle``
output is already SA-1B's annotation schema, so masks are never held at full size here.
"""
import logging
import os
from typing import Any, Dict, List, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["SAM_MODEL_TYPES", "build_sam", "SamMasker"]

logger = logging.getLogger(__name__)

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
_CHECKPOINT_NAMES = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}


def build_sam(model_type: str, checkpoint: str, device: str = "cpu") -> nn.Module:
    """SAM from segment-anything's registry with weights from a local checkpoint.

    Args:
        model_type: ``vit_b``, ``vit_l`` or ``vit_h``.
        checkpoint: path of the released ``.pth`` for that model type.
        device: where the model runs.
    """
    from segment_anything import sam_model_registry

    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f"SAM --model-type must be one of {SAM_MODEL_TYPES}, got {model_type!r}")
    if not checkpoint or not os.path.isfile(checkpoint):
        raise FileNotFoundError(
            f"SAM checkpoint {checkpoint!r} not found. Download {_CHECKPOINT_NAMES[model_type]} from the "
            "segment-anything release and pass it with --sam-checkpoint (matching --model-type).")
    sam = sam_model_registry[model_type](checkpoint=None)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"SAM checkpoint {checkpoint!r} cannot be read: {e}") from None
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"SAM checkpoint {checkpoint!r} does not hold a state dict of tensors")
    mismatch = _describe_mismatch(sam.state_dict(), state)
    if mismatch:
        raise ValueError(f"SAM checkpoint {checkpoint!r} does not fit model type {model_type!r}: {mismatch} "
                         f"(the {model_type} file is {_CHECKPOINT_NAMES[model_type]})")
    sam.load_state_dict(state)
    logger.info(f"SAM {model_type}: loaded {checkpoint}")
    return sam.to(device).eval()


def _describe_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], few: int = 2) -> str:
    """"" when ``given`` has exactly the keys and shapes of ``expected``; else what differs, with examples."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in given and tuple(given[k].shape) != tuple(v.shape)]
    parts = [f"{len(items)} {what} ({', '.join(items[:few])}{', ...' if len(items) > few else ''})"
             for what, items in (("missing tensors", missing), ("unexpected tensors", unexpected),
                                 ("tensors of another shape, file vs model", shapes)) if items]
    return "; ".join(parts)


class SamMasker:
    """Callable H×W×3 uint8 RGB image -> SA-1B annotations, with SAM's automatic mask generator.

    Args:
        sam: a ``segment_anything.modeling.Sam``.
        generator_kwargs: ``SamAutomaticMaskGenerator`` arguments (``points_per_side``,
            ``pred_iou_thresh``, ``stability_score_thresh``, ``crop_n_layers``, ...).
    """

    def __init__(self, sam: nn.Module, **generator_kwargs: Any):
        from segment_anything import SamAutomaticMaskGenerator

        generator_kwargs["output_mode"] = "coco_rle"
        self.generator = SamAutomaticMaskGenerator(sam, **generator_kwargs)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> List[Dict[str, Any]]:
        records = self.generator.generate(np.ascontiguousarray(image))
        annotations = []
        for i, r in enumerate(records):
            annotations.append({
                "id": i,
                "segmentation": r["segmentation"],
                "area": int(r["area"]),
                "bbox": [int(v) for v in r["bbox"]],
                "predicted_iou": float(r["predicted_iou"]),
                "stability_score": float(r["stability_score"]),
                "point_coords": [[float(c) for c in p] for p in r["point_coords"]],
                "crop_box": [int(v) for v in r["crop_box"]],
            })
        return annotations
