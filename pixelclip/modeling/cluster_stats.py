"""Per-step diagnostics of PixelCLIP's online clustering, logged to Detectron2's EventStorage.

Nothing here changes training; the numbers say whether the method engages and whether the
clusters collapse (the dynamics SwAV-style clustering is known for, Caron et al. 2020):

- ``blind_loss``: the binary cross-entropy that a predictor ignoring the image would reach on this
  batch's targets: per cluster the best constant, i.e. the fraction ``p_k`` of valid pixels that
  cluster covers, giving ``mean_k H(p_k)`` (H the binary entropy, nats). The training loss below it
  means the decoder reads the image; at or above it, the method has not engaged;
- ``clusters_used`` and ``largest_cluster_share``: distinct clusters the batch's masks were assigned
  to, and the share of masks in the most used one;
- ``prompt_cosine``: mean cosine between different prompt embeddings (1 = all prompts alike);
- ``text_alignment``: mean over prompts of the largest cosine to a class-name embedding of the test
  vocabulary, and ``classes_nearest``: how many class names are the nearest of at least one prompt.
  These read class *names* for the log only; nothing flows back into training.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

__all__ = ["blind_bce", "cluster_stats", "current_storage", "log_cluster_stats"]


@torch.no_grad()
def blind_bce(targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Loss of the best per-cluster constant prediction.

    Arguments:
        targets: B×K×R×R, 0/1.
        valid: B×R×R bool, the pixels the loss counts.
    Returns:
        scalar: ``mean_k [-p_k log p_k - (1 - p_k) log(1 - p_k)]``, ``p_k`` = mean of ``targets[:, k]`` over
        the valid pixels (0 when no pixel is valid).
    """
    w = valid[:, None].to(targets.dtype)
    n = w.sum()
    if n == 0:
        return targets.new_zeros(())
    p = ((targets * w).sum(dim=(0, 2, 3)) / n).double()  # K
    h = -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))
    return h.mean().to(targets.dtype)


@torch.no_grad()
def cluster_stats(assignment: torch.Tensor, num_clusters: int, prompt_embeddings: torch.Tensor,
                  class_embeddings: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """Usage and geometry of the clusters.

    Arguments:
        assignment: N long, the cluster of every mask of the batch.
        num_clusters: K.
        prompt_embeddings: K×C.
        class_embeddings: V×C class-name embeddings (optional).
    Returns:
        ``clusters_used``, ``largest_cluster_share``, ``prompt_cosine``, and with class embeddings
        ``text_alignment`` and ``classes_nearest``.
    """
    out: Dict[str, float] = {}
    if assignment.numel():
        counts = torch.bincount(assignment, minlength=num_clusters)
        out["clusters_used"] = float((counts > 0).sum())
        out["largest_cluster_share"] = float(counts.max()) / float(assignment.numel())
    p = F.normalize(prompt_embeddings.detach().float(), dim=-1)
    k = p.shape[0]
    if k > 1:
        sim = p @ p.t()
        out["prompt_cosine"] = float((sim.sum() - sim.diagonal().sum()) / (k * (k - 1)))
    if class_embeddings is not None and len(class_embeddings):
        sim = p @ F.normalize(class_embeddings.float().to(p.device), dim=-1).t()  # K×V
        best, nearest = sim.max(dim=1)
        out["text_alignment"] = float(best.mean())
        out["classes_nearest"] = float(nearest.unique().numel())
    return out


def current_storage():
    """Detectron2's current EventStorage, or None outside a trainer (a test, a benchmark, inference)."""
    from detectron2.utils.events import get_event_storage

    try:
        return get_event_storage()
    except AssertionError:
        return None


def log_cluster_stats(masks: List[torch.Tensor], assignment: torch.Tensor, targets: torch.Tensor,
                      valid: torch.Tensor, prompt_embeddings: torch.Tensor,
                      class_embeddings: Optional[torch.Tensor] = None) -> None:
    """Put the statistics of one training step into the current EventStorage as ``pixelclip/<name>``
    (nothing when called outside a trainer)."""
    storage = current_storage()
    if storage is None:
        return
    storage.put_scalar("pixelclip/masks_per_image", sum(len(m) for m in masks) / max(len(masks), 1))
    storage.put_scalar("pixelclip/blind_loss", float(blind_bce(targets, valid)))
    stats = cluster_stats(assignment, targets.shape[1], prompt_embeddings, class_embeddings)
    for name, value in stats.items():
        storage.put_scalar(f"pixelclip/{name}", value)
