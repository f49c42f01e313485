"""Cosine scoring of features against text embeddings: the one home of ``scale · cos(f, t_k)``.

Used by the training cost volume and the clustering logits (PixelCLIP Sec. 3.2 / 3.3) and by mask
classification (Sec. 4). Dense inference at TEST.FEATURE_RESOLUTION scores before resizing
(``PixelCLIP._resized_cosine``), which is the same cosine of the resized features up to float rounding.
"""
import torch
import torch.nn.functional as F


def cosine_logits(features: torch.Tensor, text: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale · cos(f, t_k)`` in the inputs' dtype.

    Arguments:
        features: N×C embeddings, or B×C×h×w dense features.
        text: K×C text (or prompt) embeddings, normalised here.
        scale: CLIP's logit scale, the clustering's ε, or 1 (a plain cosine, e.g. the cost volume).
    Returns:
        N×K, or B×K×h×w.
    """
    text = F.normalize(text, dim=-1)
    if features.dim() == 2:  # N×C: the scale multiplies the unit embeddings, then one GEMM
        return (scale * F.normalize(features, dim=-1)) @ text.t()
    scores = torch.einsum("bchw,kc->bkhw", F.normalize(features, dim=1), text)
    return scores if scale == 1.0 else scale * scores
