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

In a distributed run each process holds its share of the global batch: the batch-dependent numbers
(masks per image, blind loss, cluster usage) are computed from sums all-reduced over the processes
(:func:`batch_sums`, :func:`stats_from_sums`), so rank 0 logs the global batch's values; the prompt and
text numbers depend on the (replicated) prompts only. One host sync per step.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from .clustering import all_reduce_sum

__all__ = ["batch_sums", "blind_bce", "cluster_stats", "current_storage", "log_cluster_stats", "stats_from_sums"]


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
    names, values = _prompt_geometry(prompt_embeddings, class_embeddings)
    out.update(zip(names, values.tolist()))
    return out


def current_storage():
    """Detectron2's current EventStorage, or None outside a trainer (a test, a benchmark, inference)."""
    from detectron2.utils.events import get_event_storage

    try:
        return get_event_storage()
    except AssertionError:
        return None


@torch.no_grad()
def batch_sums(masks: List[torch.Tensor], assignment: torch.Tensor, targets: torch.Tensor,
               valid: torch.Tensor) -> torch.Tensor:
    """The additive statistics of one process's share of the batch, a float64 vector of length 3 + 2K:
    ``[masks, images, valid pixels, valid pixels covered by each cluster (K), masks per cluster (K)]``
    (integers, exact in float64 up to 2^53). Sum them over processes, then :func:`stats_from_sums`.

    Arguments: masks: B tensors N_i×R×R; assignment: ΣN_i long; targets: B×K×R×R (0/1); valid: B×R×R bool.
    """
    k = targets.shape[1]
    device = targets.device
    w = valid[:, None].to(torch.float64)
    covered = (targets.to(torch.float64) * w).sum(dim=(0, 2, 3))  # K
    counts = torch.bincount(assignment.to(device), minlength=k)[:k].to(torch.float64)  # K
    head = torch.stack([torch.full((), float(sum(len(m) for m in masks)), dtype=torch.float64, device=device),
                        torch.full((), float(len(masks)), dtype=torch.float64, device=device), w.sum()])
    return torch.cat([head, covered, counts])


def stats_from_sums(sums: torch.Tensor, num_clusters: int) -> Dict[str, float]:
    """``masks_per_image``, ``blind_loss`` (:func:`blind_bce`), ``clusters_used`` and ``largest_cluster_share``
    (:func:`cluster_stats`) of a batch from its :func:`batch_sums` (summed over processes)."""
    s = sums.detach().to("cpu", torch.float64)
    k = num_clusters
    num_masks, num_images, n = float(s[0]), float(s[1]), float(s[2])
    covered, counts = s[3:3 + k], s[3 + k:3 + 2 * k]
    out = {"masks_per_image": num_masks / max(num_images, 1.0)}
    if n > 0:
        p = covered / n
        out["blind_loss"] = float((-(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))).mean())
    else:
        out["blind_loss"] = 0.0
    if num_masks > 0:
        out["clusters_used"] = float((counts > 0).sum())
        out["largest_cluster_share"] = float(counts.max()) / num_masks
    return out


def log_cluster_stats(masks: List[torch.Tensor], assignment: torch.Tensor, targets: torch.Tensor,
                      valid: torch.Tensor, prompt_embeddings: torch.Tensor,
                      class_embeddings: Optional[torch.Tensor] = None) -> None:
    """Put the statistics of one training step into the current EventStorage as ``pixelclip/<name>``
    (nothing when called outside a trainer). In a distributed run every process calls it (a collective):
    the batch statistics are those of the global batch."""
    storage = current_storage()
    if storage is None:
        return
    k = targets.shape[1]
    sums = all_reduce_sum(batch_sums(masks, assignment, targets, valid))
    names, geometry = _prompt_geometry(prompt_embeddings, class_embeddings)  # the same on every process
    values = torch.cat([sums, geometry.to(sums)]).cpu()  # the step's one host sync
    stats = stats_from_sums(values[:len(sums)], k)
    stats.update({name: float(v) for name, v in zip(names, values[len(sums):])})
    for name, value in stats.items():
        storage.put_scalar(f"pixelclip/{name}", value)


@torch.no_grad()
def _prompt_geometry(prompt_embeddings: torch.Tensor, class_embeddings: Optional[torch.Tensor]):
    """``prompt_cosine`` (and ``text_alignment``, ``classes_nearest``) of :func:`cluster_stats` as one tensor on
    the prompts' device (no host sync): (names, values)."""
    p = F.normalize(prompt_embeddings.detach().float(), dim=-1)
    k = p.shape[0]
    names, values = [], []
    if k > 1:
        sim = p @ p.t()
        names.append("prompt_cosine")
        values.append((sim.sum() - sim.diagonal().sum()) / (k * (k - 1)))
    if class_embeddings is not None and len(class_embeddings):
        sim = p @ F.normalize(class_embeddings.float().to(p.device), dim=-1).t()  # K×V
        best, nearest = sim.max(dim=1)
        hit = torch.zeros(sim.shape[1], device=p.device).index_fill_(0, nearest, 1.0)
        names += ["text_alignment", "classes_nearest"]
        values += [best.mean(), hit.sum()]
    return names, (torch.stack(values).double() if values else p.new_zeros(0, dtype=torch.float64))
