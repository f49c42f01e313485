"""Training-free variants of a CLIP ViT's last block for dense features (``MODEL.PIXELCLIP.DENSE_MODE``).

Each function replaces the last residual block of an open_clip ViT: it takes the block and the
tokens that enter it, ``x``: B×(1+h*w)×D (CLS first, batch-first), and returns B×(1+h*w)×D tokens
on which the caller applies ``ln_post`` and ``proj`` (patch tokens only; the CLS token is dropped).
PixelCLIP's release path (``value``: MaskCLIP-style, but the residual is the CLS token's input) lives
in :mod:`pixelclip.clip.dense`.

Notation (one block; open_clip's names): ``y = ln_1(x)``, ``[q, k, v] = y W_in^T + b_in`` split into
H heads of d = D/H channels (``q_h``: (1+h*w)×d), ``s = d^-1/2``, ``Proj`` = ``out_proj``, ``ls_1`` /
``ls_2`` the block's LayerScale (identity in OpenAI CLIP). Every token, CLS included, is a query and a
key, as in the papers' official code. Where a variant has no residual, ``ls_1`` still scales the
attention branch (it belongs to the branch, not to the skip connection).

- ``vanilla``: the unmodified block, ``x + ls_1(Proj(softmax(q_h k_h^T s) v_h))`` then the FFN with its
  residual: the "CLIP" row of the training-free papers' tables.
- ``maskclip``: MaskCLIP (Zhou et al., "Extract Free Dense Labels from CLIP", ECCV 2022; its ViT
  code): the attention matrix is the identity, so every token keeps its own value,
  ``x' = x + ls_1(Proj(v))``, ``x'' = x' + ls_2(mlp(ln_2(x')))``.
- ``sclip``: SCLIP's Correlative Self-Attention (Wang et al., ECCV 2024, the CSA equation):
  ``Attn = softmax(X W_q W_q^T X^T s) + softmax(X W_k W_k^T X^T s)`` per head, i.e. q-q plus k-k
  attention, the two softmaxes summed (not averaged); ``s = d^-1/2`` as in its code. The residual and
  the FFN are kept (official code; ClearCLIP, fn. 1, reads it as α = 2 on the attention branch).
- ``clearclip``: ClearCLIP (Lan et al., ECCV 2024): self-self (query-query) attention,
  ``X = Proj(softmax(q_h q_h^T s) v_h)``, no residual connection, no FFN.
- ``naclip``: NACLIP (Hajimiri et al., WACV 2025, its "reduced" architecture):
  ``softmax(k_h k_h^T s + Ω) v_h`` with the neighbourhood bias ``Ω[(i,j),(m,n)] =
  exp(-((i-m)^2 + (j-n)^2) / (2σ^2))`` on the h×w patch grid (σ = 5 patches, the paper's default;
  zero on the CLS row and column, as the official code), then ``Proj``; no residual, no FFN.

All of them keep ``ln_1`` of the last block and CLIP's ``ln_post`` and ``proj``. They need the
block's attention to be ``nn.MultiheadAttention`` with packed q/k/v weights (open_clip's
``ResidualAttentionBlock``, every OpenAI / LAION CLIP ViT); the ConvNeXt towers have no attention
in their last stage, so only ``value`` (their per-pixel head) applies to them.
"""
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

NACLIP_GAUSSIAN_STD = 5.0  # NACLIP's σ, in patches (its paper and code default)


def _heads(block: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v of ``ln_1(x)`` split into heads: B×L×D -> three B×H×L×d tensors."""
    attn = block.attn
    if not isinstance(attn, nn.MultiheadAttention) or attn.in_proj_weight is None:
        raise TypeError(
            f"this DENSE_MODE needs a ViT block whose attention is nn.MultiheadAttention with packed q/k/v "
            f"weights (open_clip's ResidualAttentionBlock), got {type(attn).__name__}; use DENSE_MODE value"
        )
    b, n, dim = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)  # B×L×3D
    q, k, v = qkv.reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    return q, k, v


def _project(block: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """B×H×L×d head outputs -> concatenated heads -> ``out_proj``: B×L×D."""
    b, heads, n, d = out.shape
    return block.attn.out_proj(out.transpose(1, 2).reshape(b, n, heads * d))


def _ffn(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The block's feed-forward half with its residual: ``x + ls_2(mlp(ln_2(x)))``."""
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def neighbourhood_bias(grid: Tuple[int, int], std: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """NACLIP's Gaussian neighbourhood bias Ω over CLS + an h×w patch grid: (1+h*w)×(1+h*w).

    ``Ω[p, p'] = exp(-|pos(p) - pos(p')|^2 / (2 std^2))`` for patches p, p' (row-major positions);
    the CLS row and column are 0.
    """
    h, w = grid
    rows = torch.arange(h, device=device, dtype=torch.float32).repeat_interleave(w)
    cols = torch.arange(w, device=device, dtype=torch.float32).repeat(h)
    dist2 = (rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2
    bias = torch.zeros(h * w + 1, h * w + 1, device=device, dtype=torch.float32)
    bias[1:, 1:] = torch.exp(-dist2 / (2.0 * std ** 2))
    return bias.to(dtype)


def vanilla_block(block: nn.Module, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """The unmodified last block (q-k attention, residual, FFN): B×L×D -> B×L×D."""
    q, k, v = _heads(block, x)
    x = x + block.ls_1(_project(block, F.scaled_dot_product_attention(q, k, v)))
    return _ffn(block, x)


def maskclip_block(block: nn.Module, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """MaskCLIP: identity attention (each token's own value), residual and FFN kept: B×L×D -> B×L×D."""
    _, _, v = _heads(block, x)
    x = x + block.ls_1(_project(block, v))
    return _ffn(block, x)


def sclip_block(block: nn.Module, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """SCLIP: ``(softmax(q q^T s) + softmax(k k^T s)) v`` per head, residual and FFN kept: B×L×D -> B×L×D."""
    q, k, v = _heads(block, x)
    # (A_qq + A_kk) v = A_qq v + A_kk v: two fused attention calls instead of materialising A
    out = F.scaled_dot_product_attention(q, q, v) + F.scaled_dot_product_attention(k, k, v)
    x = x + block.ls_1(_project(block, out))
    return _ffn(block, x)


def clearclip_block(block: nn.Module, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """ClearCLIP: ``Proj(softmax(q q^T s) v)``, no residual, no FFN: B×L×D -> B×L×D."""
    q, _, v = _heads(block, x)
    return block.ls_1(_project(block, F.scaled_dot_product_attention(q, q, v)))


def naclip_block(block: nn.Module, x: torch.Tensor, grid: Tuple[int, int],
                 std: float = NACLIP_GAUSSIAN_STD) -> torch.Tensor:
    """NACLIP: ``Proj(softmax(k k^T s + Ω) v)``, no residual, no FFN: B×L×D -> B×L×D (``grid`` = (h, w))."""
    q, k, v = _heads(block, x)
    bias = neighbourhood_bias(grid, std, device=k.device, dtype=k.dtype)
    if bias.shape[0] != k.shape[2]:
        raise ValueError(f"NACLIP: {k.shape[2]} tokens do not match a CLS token + a {grid[0]}×{grid[1]} patch grid")
    return block.ls_1(_project(block, F.scaled_dot_product_attention(k, k, v, attn_mask=bias)))


# DENSE_MODE -> last-block function (``value`` is pixelclip.clip.dense.value_path_block)
VIT_LAST_BLOCKS: Dict[str, Callable[[nn.Module, torch.Tensor, Tuple[int, int]], torch.Tensor]] = {
    "vanilla": vanilla_block,
    "maskclip": maskclip_block,
    "sclip": sclip_block,
    "clearclip": clearclip_block,
    "naclip": naclip_block,
}
DENSE_MODES = ("value",) + tuple(VIT_LAST_BLOCKS)


# modes whose last block has no feed-forward half: its ``ln_2``, ``mlp`` and ``ls_2`` take no part in the features
MODES_WITHOUT_FFN = ("clearclip", "naclip")


def unused_parameter_names(visual: nn.Module, mode: str) -> List[str]:
    """Names (in ``visual.named_parameters()``) of the ViT tower's parameters that ``mode`` never uses: the
    feed-forward half of the last block for ClearCLIP and NACLIP; none otherwise (the parameters of one
    packed q/k/v matrix count as used: the matrix receives a gradient, zero on its unused rows).

    They must not train: they would get no gradient, and DistributedDataParallel (D2's, without
    ``find_unused_parameters``) stops at the second iteration waiting for their reduction."""
    if mode not in MODES_WITHOUT_FFN:
        return []
    last = len(visual.transformer.resblocks) - 1
    prefixes = tuple(f"transformer.resblocks.{last}.{part}." for part in ("ln_2", "mlp", "ls_2"))
    return [name for name, _ in visual.named_parameters() if name.startswith(prefixes)]


def check_dense_mode(mode: str) -> str:
    """``mode`` if it is a known DENSE_MODE, else a ValueError listing them."""
    if mode not in DENSE_MODES:
        raise ValueError(f"unknown MODEL.PIXELCLIP.DENSE_MODE '{mode}': one of {', '.join(DENSE_MODES)}")
    return mode
