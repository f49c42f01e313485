"""Each DENSE_MODE agrees with its paper's formula written out head by head from the raw weights.

The references below never call pixelclip's dense code: tokens are embedded by hand, the last
block's q/k/v, per-head attention (explicit loops), out_proj, FFN, ln_post and proj are written
from the weights, and NACLIP's Gaussian bias is built position by position.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixelclip.clip.build import build_clip_model
from pixelclip.clip.dense import dense_features
from pixelclip.clip.dense_modes import DENSE_MODES, naclip_block
from pixelclip.modeling.backbone import PixelCLIPBackbone


def _layer_norm(x, ln):
    return F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps)


def _tokens_entering_last_block(visual, images):
    """B×(1+h*w)×D: patch embedding, CLS, bicubic position embedding, ln_pre, all blocks but the last."""
    p = visual.conv1.weight.shape[-1]
    x = F.conv2d(images, visual.conv1.weight, stride=p)
    b, d, h, w = x.shape
    x = torch.cat([visual.class_embedding.view(1, 1, d).expand(b, 1, d), x.reshape(b, d, h * w).transpose(1, 2)], 1)
    pos = visual.positional_embedding
    g = int(round((pos.shape[0] - 1) ** 0.5))
    grid = pos[1:].reshape(1, g, g, d).permute(0, 3, 1, 2)
    if (g, g) != (h, w):
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
    x = _layer_norm(x + torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, d)]), visual.ln_pre)
    for block in list(visual.transformer.resblocks)[:-1]:
        x = block(x)  # open_clip's own block (batch-first)
    return x, (h, w)


def _qkv(block, x):
    """q, k, v (B×L×D each) of ln_1(x), from the packed in_proj weights."""
    d = x.shape[-1]
    y = _layer_norm(x, block.ln_1)
    wq, wk, wv = block.attn.in_proj_weight.split(d)
    bq, bk, bv = block.attn.in_proj_bias.split(d)
    return y @ wq.t() + bq, y @ wk.t() + bk, y @ wv.t() + bv


def _per_head(block, x, attention):
    """Concatenate ``attention(q_h, k_h, v_h, scale)`` over heads (explicit loop), then out_proj."""
    q, k, v = _qkv(block, x)
    heads = block.attn.num_heads
    dh = x.shape[-1] // heads
    outs = []
    for hd in range(heads):
        sl = slice(hd * dh, (hd + 1) * dh)
        outs.append(attention(q[..., sl], k[..., sl], v[..., sl], 1.0 / math.sqrt(dh)))
    out = torch.cat(outs, dim=-1)
    return out @ block.attn.out_proj.weight.t() + block.attn.out_proj.bias


def _ffn_with_residual(block, x):
    z = _layer_norm(x, block.ln_2)
    z = F.gelu(z @ block.mlp.c_fc.weight.t() + block.mlp.c_fc.bias)
    return x + z @ block.mlp.c_proj.weight.t() + block.mlp.c_proj.bias


def _gaussian_bias(h, w, std):
    """NACLIP's Ω on CLS + an h×w grid, one entry at a time (row-major patches, CLS row/column 0)."""
    n = h * w
    omega = torch.zeros(n + 1, n + 1)
    for a in range(n):
        for c in range(n):
            (i, j), (m, l) = divmod(a, w), divmod(c, w)
            omega[1 + a, 1 + c] = math.exp(-((i - m) ** 2 + (j - l) ** 2) / (2 * std ** 2))
    return omega


def _softmax_attention(logits_fn):
    return lambda q, k, v, s: torch.softmax(logits_fn(q, k, s), dim=-1) @ v


def _reference_last_block(mode, block, x, grid, std=5.0):
    """The last block of each paper, B×L×D -> B×L×D."""
    if mode == "vanilla":  # standard ViT block: softmax(q k^T / sqrt(d)) v, residual, FFN
        x = x + _per_head(block, x, _softmax_attention(lambda q, k, s: q @ k.transpose(-1, -2) * s))
        return _ffn_with_residual(block, x)
    if mode == "maskclip":  # identity attention: each token's own value, residual, FFN
        x = x + _per_head(block, x, lambda q, k, v, s: v)
        return _ffn_with_residual(block, x)
    if mode == "sclip":  # (softmax(q q^T s) + softmax(k k^T s)) v, residual, FFN
        def csa(q, k, v, s):
            a = torch.softmax(q @ q.transpose(-1, -2) * s, -1) + torch.softmax(k @ k.transpose(-1, -2) * s, -1)
            return a @ v
        return _ffn_with_residual(block, x + _per_head(block, x, csa))
    if mode == "clearclip":  # Proj(softmax(q q^T s) v), no residual, no FFN
        return _per_head(block, x, _softmax_attention(lambda q, k, s: q @ q.transpose(-1, -2) * s))
    if mode == "naclip":  # Proj(softmax(k k^T s + Ω) v), no residual, no FFN
        omega = _gaussian_bias(*grid, std)
        return _per_head(block, x, _softmax_attention(lambda q, k, s: k @ k.transpose(-1, -2) * s + omega))
    raise AssertionError(mode)


def _reference_dense(visual, images, mode):
    x, (h, w) = _tokens_entering_last_block(visual, images)
    x = _reference_last_block(mode, visual.transformer.resblocks[-1], x, (h, w))
    out = _layer_norm(x[:, 1:], visual.ln_post) @ visual.proj
    return out.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def tiny_visual():
    torch.manual_seed(0)
    visual = build_clip_model("PixelCLIP-Tiny-ViT", "")[0].visual.eval()
    assert visual.transformer.resblocks[-1].attn.num_heads >= 2  # head splitting is exercised
    with torch.no_grad():  # biases away from open_clip's zero init, so every bias term is checked
        for name, p in visual.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return visual


PAPER_MODES = ["vanilla", "maskclip", "sclip", "clearclip", "naclip"]


@pytest.mark.parametrize("size", [(64, 64), (48, 96)])
@pytest.mark.parametrize("mode", PAPER_MODES)
def test_dense_mode_matches_the_papers_formula(tiny_visual, mode, size):
    torch.manual_seed(1)
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours = dense_features(tiny_visual, images, mode)
        reference = _reference_dense(tiny_visual, images, mode)
    assert ours.shape == (2, 32, size[0] // 16, size[1] // 16)
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-4)


def test_modes_differ_from_each_other(tiny_visual):
    images = torch.randn(1, 3, 48, 96)
    with torch.no_grad():
        feats = {m: dense_features(tiny_visual, images, m) for m in DENSE_MODES}
    for a in DENSE_MODES:
        for b in DENSE_MODES:
            if a < b:
                assert not torch.allclose(feats[a], feats[b], atol=1e-3), (a, b)


def test_naclip_bias_orientation_on_a_non_square_grid(tiny_visual):
    """A narrow Gaussian (σ = 1) on a 3×5 grid: a transposed or mis-ordered bias would not match."""
    torch.manual_seed(2)
    block = tiny_visual.transformer.resblocks[-1]
    x = torch.randn(2, 1 + 15, block.ln_1.weight.shape[0])
    with torch.no_grad():
        ours = naclip_block(block, x, (3, 5), std=1.0)
        omega = _gaussian_bias(3, 5, 1.0)
        reference = _per_head(block, x, _softmax_attention(lambda q, k, s: k @ k.transpose(-1, -2) * s + omega))
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="patch grid"):
        naclip_block(block, x, (4, 5))


def test_vanilla_is_open_clips_own_forward(tiny_visual):
    """Independent of the hand-written reference: open_clip's whole transformer, then ln_post and proj."""
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        x = tiny_visual.ln_pre(torch.cat([
            tiny_visual.class_embedding.view(1, 1, -1).expand(2, 1, -1),
            tiny_visual.conv1(images).flatten(2).transpose(1, 2)], 1) + tiny_visual.positional_embedding)
        x = tiny_visual.ln_post(tiny_visual.transformer(x)[:, 1:]) @ tiny_visual.proj
        ours = dense_features(tiny_visual, images, "vanilla")
    torch.testing.assert_close(ours, x.reshape(2, 4, 4, -1).permute(0, 3, 1, 2), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", DENSE_MODES)
def test_sequence_first_transformer_gives_the_same_features(mode):
    """open_clip towers that run their blocks sequence-first (L×B×D) give the same dense features."""
    torch.manual_seed(0)
    visual = build_clip_model("PixelCLIP-Tiny-ViT", "")[0].visual.eval()
    images = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        batch_first = dense_features(visual, images, mode)
        visual.transformer.batch_first = False
        for block in visual.transformer.resblocks:
            block.attn.batch_first = False
        seq_first = dense_features(visual, images, mode)
    torch.testing.assert_close(seq_first, batch_first, atol=1e-5, rtol=1e-5)


def test_unknown_mode_and_unsupported_attention_are_clear_errors(tiny_visual):
    with pytest.raises(ValueError, match="DENSE_MODE 'bogus'"):
        dense_features(tiny_visual, torch.randn(1, 3, 64, 64), "bogus")

    class NotMHA(nn.Module):
        pass

    torch.manual_seed(0)
    visual = build_clip_model("PixelCLIP-Tiny-ViT", "")[0].visual
    visual.transformer.resblocks[-1].attn = NotMHA()
    with pytest.raises(TypeError, match="nn.MultiheadAttention"):
        dense_features(visual, torch.randn(1, 3, 64, 64), "sclip")


def test_convnext_accepts_only_value_mode():
    model = build_clip_model("PixelCLIP-Tiny-ConvNeXt", "")[0]
    images = torch.randn(1, 3, 64, 64)
    assert dense_features(model.visual, images, "value").shape == (1, 32, 2, 2)
    with pytest.raises(ValueError, match="ConvNeXt"):
        dense_features(model.visual, images, "sclip")
    with pytest.raises(ValueError, match="MODEL.PIXELCLIP.DENSE_MODE 'naclip'"):
        PixelCLIPBackbone(clip_model=model, tokenizer=None, finetune="none", dense_mode="naclip")
