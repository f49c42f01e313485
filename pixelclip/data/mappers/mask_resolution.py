"""Training masks reduced to the model's mask resolution in the data loader, before they reach the model.

PixelCLIP's clustering and loss live on an R×R grid (``MODEL.PIXELCLIP.MASK_RESOLUTION``, 256; PixelCLIP
Sec. 3.3): masks are nearest-resized to it. Done here, in the data-loader workers, a 640² crop's N masks
shrink 6.25× before they are collated, passed between processes and copied to the GPU; the model
(:meth:`pixelclip.modeling.pixelclip.PixelCLIP._masks_of`) takes masks already at R×R as they are and
filters them as before, so the targets are the same either way.
"""
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F
from detectron2.structures import BitMasks

__all__ = ["MaskResolutionMapper", "nearest_indices", "reduce_masks"]


def nearest_indices(in_size: int, out_size: int, device=None) -> torch.Tensor:
    """Source index of each of ``out_size`` positions under ``F.interpolate(..., mode="nearest")`` from
    ``in_size`` positions: PyTorch's own kernel applied to the integers 0..in_size-1 (so its rounding)."""
    ramp = torch.arange(in_size, dtype=torch.float32, device=device).view(1, 1, -1)
    return F.interpolate(ramp, size=out_size, mode="nearest")[0, 0].long()


def reduce_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """N×H×W masks -> N×size×size bool, equal to ``F.interpolate(masks[None].float(), (size, size),
    mode="nearest")[0] > 0.5``, by picking rows and columns where the masks are (no float copy of N×H×W).
    The model's :func:`pixelclip.modeling.clustering.resize_masks` resizes with it too."""
    masks = masks.bool()
    if tuple(masks.shape[-2:]) == (size, size):
        return masks
    rows = nearest_indices(masks.shape[-2], size, masks.device)
    cols = nearest_indices(masks.shape[-1], size, masks.device)
    return masks[:, rows][:, :, cols].contiguous()


class MaskResolutionMapper:
    """A training mapper whose output's ``instances.gt_masks`` are reduced to R×R (:func:`reduce_masks`).

    Arguments:
        mapper: the dataset mapper (returns a dict with ``instances.gt_masks`` N×H×W, or None for a
            skipped sample, which is passed on).
        mask_resolution: R, the model's ``MODEL.PIXELCLIP.MASK_RESOLUTION``.
    """

    def __init__(self, mapper: Callable[[Dict[str, Any]], Optional[Dict[str, Any]]], mask_resolution: int):
        self.mapper = mapper
        self.mask_resolution = int(mask_resolution)

    @property
    def skip_counter(self):
        """The wrapped mapper's skip counter (read by the train loader's ``SkipAwareMapDataset``)."""
        return getattr(self.mapper, "skip_counter", None)

    def __call__(self, dataset_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        out = self.mapper(dataset_dict)
        instances = None if out is None else out.get("instances")
        if instances is not None and instances.has("gt_masks"):
            gt = instances.gt_masks
            masks = gt.tensor if hasattr(gt, "tensor") else gt
            instances.gt_masks = BitMasks(reduce_masks(masks, self.mask_resolution))
        return out

    def __repr__(self) -> str:
        return f"MaskResolutionMapper({self.mapper!r}, mask_resolution={self.mask_resolution})"
