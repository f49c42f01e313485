"""Dense (per-patch / per-pixel) CLIP image features, aligned with CLIP's text space.

ViT (MaskCLIP-style, as in PixelCLIP's release): the last residual block is replaced by its value
path, ``v = out_proj(v_proj(ln_1(x)))``, ``x' = v + x_cls``, ``x'' = x' + mlp(ln_2(x'))``; then
``ln_post`` and ``proj`` on every patch token; the CLS token is dropped. Position embeddings are
bicubically interpolated to the patch grid, so any input size divisible by the patch size works.
ConvNeXt: trunk features -> the head's norm -> the head's projection, per pixel, no pooling. open_clip's
timm towers project in one of three ways (``timm_proj`` of the model config): ``linear`` (``visual.head.proj``,
e.g. ``convnext_base_w_320``), ``mlp`` (``visual.head.mlp``, e.g. ``convnext_large_d_320``), or none, where the
trunk's own classifier ``fc`` (a 1×1 conv when the trunk does not pool) projects, or nothing does. Every one of
them is applied to each pixel here.
``mode`` (``MODEL.PIXELCLIP.DENSE_MODE``) swaps the ViT's last block for a training-free variant
(vanilla, MaskCLIP, SCLIP, ClearCLIP, NACLIP: :mod:`pixelclip.clip.dense_modes`); ``value`` is the
value path above and the only mode of ConvNeXt towers (no attention in their last stage).
``checkpoint`` (``MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING``) recomputes each block's activations in the backward
pass instead of keeping them (``torch.utils.checkpoint``, non-reentrant); it acts only where autograd records
(the student), so the no-grad teacher and inference run as before. Same values and gradients.
"""
from typing import Callable, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from .build import blocks_batch_first, is_convnext, is_vit
from .dense_modes import VIT_LAST_BLOCKS, check_dense_mode


def interpolate_positional_embedding(pos_embed: torch.Tensor, old_grid: Tuple[int, int],
                                     new_grid: Tuple[int, int]) -> torch.Tensor:
    """Resize a ViT position embedding ``(1 + gh*gw)×D`` to ``(1 + nh*nw)×D`` (bicubic, CLS kept)."""
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:1], pos_embed[1:]
    dim = patch_pos.shape[-1]
    patch_pos = patch_pos.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=tuple(new_grid), mode="bicubic", align_corners=False)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(-1, dim)
    return torch.cat([cls_pos, patch_pos], dim=0)


def run_block(fn: Callable[..., torch.Tensor], *args, checkpoint: bool = False) -> torch.Tensor:
    """``fn(*args)``; with ``checkpoint`` and autograd recording, through activation checkpointing: only the
    block's input is kept, its inner activations are recomputed in the backward pass."""
    if checkpoint and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def vit_tokens(visual: nn.Module, images: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Patch embedding + CLS + interpolated position embedding + ``ln_pre``.

    Arguments:
        images: B×3×H×W, CLIP-normalised, H and W divisible by the patch size.
    Returns:
        tokens B×(1+h*w)×D and the grid (h, w).
    """
    patch = visual.patch_size
    if images.shape[-2] % patch[0] or images.shape[-1] % patch[1]:
        raise ValueError(f"input {tuple(images.shape[-2:])} is not divisible by the ViT patch size {patch}")
    x = visual.conv1(images)  # B×D×h×w
    grid = (x.shape[-2], x.shape[-1])
    x = x.flatten(2).transpose(1, 2)  # B×hw×D
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1)
    x = x + interpolate_positional_embedding(visual.positional_embedding, visual.grid_size, grid).to(x.dtype)
    return visual.ln_pre(x), grid


def value_path_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last ViT block with attention replaced by its value path (B×L×D -> B×L×D)."""
    attn = block.attn
    dim = x.shape[-1]
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * dim:], attn.in_proj_bias[2 * dim:])
    v = block.ls_1(attn.out_proj(v))
    x = v + x[:, :1]  # residual from the block's input CLS token (the release's value path)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def vit_dense_features(visual: nn.Module, images: torch.Tensor, mode: str = "value",
                       checkpoint: bool = False) -> torch.Tensor:
    """Dense CLIP features of an open_clip ViT: B×3×H×W -> B×C×(H/p)×(W/p); ``mode``: the last
    block (``value`` or a :data:`pixelclip.clip.dense_modes.VIT_LAST_BLOCKS` key); ``checkpoint``:
    activation checkpointing per block (:func:`run_block`)."""
    check_dense_mode(mode)
    x, (h, w) = vit_tokens(visual, images)
    blocks = visual.transformer.resblocks
    batch_first = blocks_batch_first(visual.transformer)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in blocks[:-1]:
        x = run_block(block, x, checkpoint=checkpoint)
    if not batch_first:
        x = x.transpose(0, 1)
    if mode == "value":
        x = run_block(value_path_block, blocks[-1], x, checkpoint=checkpoint)
    else:
        x = run_block(VIT_LAST_BLOCKS[mode], blocks[-1], x, (h, w), checkpoint=checkpoint)
    x = visual.ln_post(x[:, 1:])
    if visual.proj is not None:
        x = x @ visual.proj
    return x.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()


def _per_pixel(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a head layer to channels-last features B×h×w×C; a 1×1 convolution acts as a linear map."""
    if isinstance(module, nn.Conv2d):
        if tuple(module.kernel_size) != (1, 1):
            raise TypeError(f"cannot apply a {tuple(module.kernel_size)} convolution of a ConvNeXt head per pixel")
        return F.linear(x, module.weight.flatten(1), module.bias)
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = _per_pixel(layer, x)
        return x
    return module(x)  # Linear, Mlp (Linear layers), Dropout, activations, Identity: last-dim maps


def convnext_head_per_pixel(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The image tower's head without its global pooling, on every position: B×Ct×h×w trunk features
    -> B×C×h×w (the trunk head's norm, pre-logits and classifier, then open_clip's projection head)."""
    head = visual.trunk.head
    x = head.norm(x).permute(0, 2, 3, 1)  # LayerNorm2d over channels, then channels-last
    for layer in (getattr(head, "pre_logits", None), getattr(head, "drop", None), head.fc, visual.head):
        if layer is not None:
            x = _per_pixel(layer, x)
    return x.permute(0, 3, 1, 2).contiguous()


def convnext_trunk_checkpointed(trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """timm ConvNeXt's ``forward_features`` (stem, stages, ``norm_pre``) with each stage block under
    activation checkpointing (:func:`run_block`): B×3×H×W -> B×Ct×(H/32)×(W/32)."""
    x = trunk.stem(images)
    for stage in trunk.stages:
        x = stage.downsample(x)
        for block in stage.blocks:
            x = run_block(block, x, checkpoint=True)
    return trunk.norm_pre(x)


def convnext_dense_features(visual: nn.Module, images: torch.Tensor, checkpoint: bool = False) -> torch.Tensor:
    """Dense CLIP features of an open_clip timm ConvNeXt: B×3×H×W -> B×C×(H/32)×(W/32); ``checkpoint``:
    activation checkpointing per stage block."""
    if checkpoint and torch.is_grad_enabled():
        return convnext_head_per_pixel(visual, convnext_trunk_checkpointed(visual.trunk, images))
    return convnext_head_per_pixel(visual, visual.trunk.forward_features(images))


def check_tower_dense_mode(visual: nn.Module, mode: str) -> str:
    """``mode`` if the image tower supports it; a ValueError naming MODEL.PIXELCLIP.DENSE_MODE otherwise."""
    check_dense_mode(mode)
    if mode != "value" and not is_vit(visual):
        raise ValueError(
            f"MODEL.PIXELCLIP.DENSE_MODE '{mode}' changes the attention of a ViT's last block; the "
            f"{type(visual).__name__} image tower (ConvNeXt) has no attention in its last stage: use 'value'"
        )
    return mode


def dense_features(visual: nn.Module, images: torch.Tensor, mode: str = "value",
                   checkpoint: bool = False) -> torch.Tensor:
    """Dense features of any supported image tower: B×3×H×W -> B×C×h×w (C = CLIP embedding dim);
    ``mode`` = MODEL.PIXELCLIP.DENSE_MODE (ConvNeXt: ``value`` only); ``checkpoint`` =
    MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING (acts only while autograd records)."""
    if is_vit(visual):
        return vit_dense_features(visual, images, mode, checkpoint)
    if is_convnext(visual):
        check_tower_dense_mode(visual, mode)
        return convnext_dense_features(visual, images, checkpoint)
    raise TypeError(f"dense features are implemented for open_clip ViT and ConvNeXt towers, not {type(visual).__name__}")


def feature_stride(visual: nn.Module) -> int:
    """Input pixels per dense-feature cell."""
    if is_vit(visual):
        return int(visual.patch_size[0])
    if is_convnext(visual):
        return 32
    raise TypeError(f"unsupported image tower {type(visual).__name__}")


def embed_dim(visual: nn.Module) -> int:
    """CLIP embedding dimension of an image tower's (dense) output.

    ViT: ``output_dim``. timm ConvNeXt: the width of what its head gives for one position (read by
    running the head on one zero vector, so linear, MLP and trunk-classifier projections all count).
    """
    if is_vit(visual):
        return int(visual.output_dim)
    if is_convnext(visual):
        param = next(visual.parameters())
        probe = torch.zeros(1, int(visual.trunk.num_features), 1, 1, dtype=param.dtype, device=param.device)
        with torch.no_grad():
            return int(convnext_head_per_pixel(visual, probe).shape[1])
    if hasattr(visual, "output_dim"):
        return int(visual.output_dim)
    raise TypeError(f"unsupported image tower {type(visual).__name__}")
