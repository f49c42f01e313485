"""Online clustering of unlabeled masks into K global semantic clusters (PixelCLIP, Sec. 3.3).

Mask features (teacher features averaged inside each mask, ``pooling.py``) are scored against the K prompt
embeddings, balanced by Sinkhorn-Knopp (SwAV, Caron et al. 2020) over the whole global batch, and
each mask takes its arg-max cluster. Per image and cluster, the union of its masks is the target.
All of it runs in float32 (Sinkhorn in float64) with autocast off: under AMP the teacher features arrive
in float16 / bfloat16, and float16 sums over a large mask overflow (``pooling.py``).
"""
from typing import List, Tuple

import torch
import torch.distributed as dist

from ..data.mappers.mask_resolution import reduce_masks
from .pooling import pool_upsampled_features
from .scoring import cosine_logits


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed in place over the processes of a distributed run (unchanged in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


@torch.no_grad()
def sinkhorn(logits: torch.Tensor, num_iters: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp on ``softmax(logits)`` with equal total mass per cluster.

    Sums run over all processes (all-reduced), so the balance holds for the global batch.
    Arguments:
        logits: N×K (masks × clusters) on this process; N may be 0.
    Returns:
        Q: N×K soft assignment (float32); every row sums to 1 and, at convergence, every cluster
        holds N_total/K of the mass.
    """
    num_clusters = logits.shape[1]
    # float64: with ε = 100 the softmax spans e^±200, which underflows float32
    q = torch.softmax(logits.double(), dim=1).t()  # K×N
    n_total = all_reduce_sum(torch.full((), float(q.shape[1]), dtype=torch.float64, device=q.device))
    # no host sync on n_total: when it is 0 every process has N = 0 and q is empty (K×0) throughout
    q /= all_reduce_sum(q.sum()).clamp_min(1e-300)
    for _ in range(num_iters):
        q /= all_reduce_sum(q.sum(dim=1, keepdim=True)).clamp_min(1e-300)  # each cluster: mass 1/K
        q /= num_clusters
        q /= q.sum(dim=0, keepdim=True).clamp_min(1e-300)  # each mask: mass 1/N
        q /= n_total
    q *= n_total  # each mask's column sums to 1
    return q.t().float()


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """N×H×W bool masks -> M×size×size (nearest), dropping masks with ≤1 pixel left (the release's filter);
    the others stay in their order. (MAX_MASKS is applied once, by the training mapper.)"""
    if masks.numel() == 0:
        return masks.new_zeros((0, size, size), dtype=torch.bool)
    small = reduce_masks(masks, size)  # masks the loader already reduced are taken as they are
    area = small.flatten(1).sum(1)
    return small[area > 1]


@torch.no_grad()
def cluster_targets(teacher_features: torch.Tensor, masks: List[torch.Tensor], prompt_embeddings: torch.Tensor,
                    eps: float = 100.0, num_iters: int = 3) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Assign every mask to a prompt and build per-image, per-cluster target maps.

    Mask features are the averages of the teacher features bilinearly upsampled to the mask
    resolution R (``pool_upsampled_features``, without the B×C×R×R tensor).

    Arguments:
        teacher_features: B×C×h×w dense features of the weak views.
        masks: B tensors N_i×R×R (bool) at the mask resolution R (already resized and filtered).
        prompt_embeddings: K×C.
        eps: scale ε of the cosine logits.
    Returns:
        targets B×K×R×R (float 0/1: union of the masks assigned to each cluster),
        valid B×R×R (bool: pixels covered by at least one mask),
        assignment (ΣN_i) long: the cluster of every mask, images concatenated in order.
    Inputs of any floating dtype; computed in float32 with autocast off on their device.
    """
    with torch.autocast(device_type=teacher_features.device.type, enabled=False):
        return _cluster_targets(teacher_features, masks, prompt_embeddings, eps, num_iters)


def _cluster_targets(teacher_features: torch.Tensor, masks: List[torch.Tensor], prompt_embeddings: torch.Tensor,
                     eps: float, num_iters: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, c = teacher_features.shape[:2]
    k = prompt_embeddings.shape[0]
    r = masks[0].shape[-1] if masks else 1
    feats = teacher_features.float()
    mask_feats = [pool_upsampled_features(feats[i], masks[i]) for i in range(b)]
    mask_feats = torch.cat(mask_feats) if mask_feats else feats.new_zeros((0, c))
    logits = cosine_logits(mask_feats, prompt_embeddings.float(), eps)
    assignment = sinkhorn(logits, num_iters).argmax(dim=1)
    targets = feats.new_zeros((b, k, r * r))
    valid = torch.zeros((b, r, r), dtype=torch.bool, device=feats.device)
    for i, chunk in enumerate(assignment.split([len(m) for m in masks])):
        if len(chunk) == 0:
            continue
        targets[i].index_add_(0, chunk, masks[i].flatten(1).to(targets.dtype))  # masks per cluster and pixel
        valid[i] = masks[i].any(dim=0)
    return targets.clamp_max_(1.0).view(b, k, r, r), valid, assignment
