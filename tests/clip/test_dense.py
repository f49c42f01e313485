"""Dense features agree with an independent step-by-step computation; the global path is open_clip's."""
import pytest
import torch
import torch.nn.functional as F

from pixelclip.clip.build import build_clip_model
from pixelclip.clip.dense import dense_features, feature_stride
from pixelclip.modeling.backbone import PixelCLIPBackbone


def _reference_vit_dense(visual, images):
    """MaskCLIP-style dense features written out from the raw weights."""
    p = visual.conv1.weight.shape[-1]
    x = F.conv2d(images, visual.conv1.weight, stride=p)
    b, d, h, w = x.shape
    x = x.reshape(b, d, h * w).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding.view(1, 1, d).expand(b, 1, d), x], dim=1)
    pos = visual.positional_embedding
    g = int((pos.shape[0] - 1) ** 0.5)
    grid = pos[1:].reshape(1, g, g, d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False) if (g, g) != (h, w) else grid
    x = x + torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, d)])
    x = F.layer_norm(x, (d,), visual.ln_pre.weight, visual.ln_pre.bias, visual.ln_pre.eps)
    blocks = list(visual.transformer.resblocks)
    for blk in blocks[:-1]:
        x = blk(x)
    last = blocks[-1]
    y = F.layer_norm(x, (d,), last.ln_1.weight, last.ln_1.bias, last.ln_1.eps)
    wv, bv = last.attn.in_proj_weight[2 * d:], last.attn.in_proj_bias[2 * d:]
    v = (y @ wv.t() + bv) @ last.attn.out_proj.weight.t() + last.attn.out_proj.bias
    x1 = v + x[:, :1]
    z = F.layer_norm(x1, (d,), last.ln_2.weight, last.ln_2.bias, last.ln_2.eps)
    z = F.gelu(z @ last.mlp.c_fc.weight.t() + last.mlp.c_fc.bias) @ last.mlp.c_proj.weight.t() + last.mlp.c_proj.bias
    x2 = x1 + z
    out = F.layer_norm(x2[:, 1:], (d,), visual.ln_post.weight, visual.ln_post.bias, visual.ln_post.eps) @ visual.proj
    return out.reshape(b, h, w, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size", [(64, 64), (48, 96)])
def test_vit_dense_matches_reference(size):
    torch.manual_seed(0)
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    images = torch.randn(2, 3, *size)
    ours = dense_features(model.visual, images)
    assert ours.shape == (2, 32, size[0] // 16, size[1] // 16)
    assert torch.allclose(ours, _reference_vit_dense(model.visual, images), atol=1e-5)


def test_vit_rejects_sizes_not_divisible_by_patch():
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    with pytest.raises(ValueError, match="patch size"):
        dense_features(model.visual, torch.randn(1, 3, 60, 64))


def test_convnext_dense_matches_reference():
    torch.manual_seed(0)
    model, _ = build_clip_model("PixelCLIP-Tiny-ConvNeXt", "")
    visual = model.visual.eval()
    images = torch.randn(2, 3, 64, 96)
    x = visual.trunk.stem(images)
    for stage in visual.trunk.stages:
        x = stage(x)
    norm = visual.trunk.head.norm
    x = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), norm.weight, norm.bias, norm.eps)
    reference = (x @ visual.head.proj.weight.t()).permute(0, 3, 1, 2)
    ours = dense_features(visual, images)
    assert ours.shape == (2, 32, 2, 3) and feature_stride(visual) == 32
    assert torch.allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("name", ["PixelCLIP-Tiny-ViT", "PixelCLIP-Tiny-ConvNeXt"])
def test_global_path_equals_open_clip_encode_image(name):
    torch.manual_seed(0)
    backbone = PixelCLIPBackbone(clip_model=build_clip_model(name, "")[0], tokenizer=None, finetune="none").eval()
    images = torch.randn(2, 3, 64, 64)
    assert torch.equal(backbone.encode_image(images), backbone.clip_model.encode_image(images))
    out = backbone(images)["clip_dense"]
    spec = backbone.output_shape()["clip_dense"]
    assert out.shape[1] == spec.channels and out.shape[-1] == 64 // spec.stride


# open_clip's timm towers project in three ways (``timm_proj``): "linear" (visual.head.proj, e.g.
# convnext_base_w_320), "mlp" (visual.head.mlp, convnext_large_d_320), and none: "" makes the trunk's own
# classifier (a 1x1 conv, the trunk does not pool) the projection, "none" passes the trunk features through.
@pytest.mark.parametrize("proj", ["linear", "mlp", "", "none"])
def test_convnext_every_head_kind_is_applied_per_pixel(proj):
    from open_clip.timm_model import TimmModel

    from pixelclip.clip.dense import embed_dim

    torch.manual_seed(0)
    visual = TimmModel("convnext_atto", embed_dim=24, image_size=64, pool="", proj=proj).eval()
    _randomise_biases(visual)  # timm zero-initialises the classifier bias (the 1×1 conv of proj "none")
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours = dense_features(visual, images)
        trunk = visual.trunk.forward_features(images)
        # reference: timm's and open_clip's own global head on each 1x1 position (pooling one value is the value)
        reference = torch.stack([torch.stack([
            visual.head(visual.trunk.forward_head(trunk[:, :, i:i + 1, j:j + 1]).flatten(1))
            for j in range(trunk.shape[-1])], dim=-1) for i in range(trunk.shape[-2])], dim=-2)
        # and open_clip's forward on an input whose grid is one position
        small = torch.randn(2, 3, 32, 32)
        global_small = visual(small).flatten(1)
    width = 320 if proj == "none" else 24  # convnext_atto's last stage has 320 channels
    assert embed_dim(visual) == width
    assert ours.shape == (2, width, 2, 3)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense_features(visual, small)[:, :, 0, 0], global_small, atol=1e-5, rtol=1e-5)


def test_vit_dense_follows_both_open_clip_layouts():
    import copy

    from tests.clip.test_text import _sequence_first_blocks, _SequenceFirstTransformer

    torch.manual_seed(0)
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    images = torch.randn(2, 3, 64, 48)
    expected = _reference_vit_dense(model.visual, images)
    flipped = copy.deepcopy(model.visual)  # open_clip 2.26 to 3.x built with batch_first=False
    flipped.transformer.batch_first = False
    flipped.transformer.resblocks = _sequence_first_blocks(model.visual.transformer)
    legacy = copy.deepcopy(model.visual)  # open_clip < 2.26: no batch_first attribute, sequence-first blocks
    legacy.transformer = _SequenceFirstTransformer(_sequence_first_blocks(model.visual.transformer))
    for visual in (model.visual, flipped, legacy):
        torch.testing.assert_close(dense_features(visual, images), expected, atol=1e-5, rtol=1e-5)


def _randomise_biases(module, seed: int = 1):
    """open_clip zero-initialises the attention and projection biases: give every bias and LayerNorm shift
    a value, so a formula that drops one differs from one that keeps it."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias"):
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))


def test_vit_dense_value_path_keeps_the_attention_biases():
    """The value path is ``out_proj(v_proj(ln_1(x)))`` with both biases: the step-by-step reference above
    (``b_v``, ``b_out``), and torch's own ``nn.MultiheadAttention`` with each token attending only to itself."""
    torch.manual_seed(0)
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    visual = model.visual
    _randomise_biases(visual)
    images = torch.randn(2, 3, 48, 64)
    ours = dense_features(visual, images)
    assert torch.allclose(ours, _reference_vit_dense(visual, images), atol=1e-5)
    # the last block's value path from nn.MultiheadAttention itself: an identity attention pattern
    from pixelclip.clip.dense import value_path_block

    last = visual.transformer.resblocks[-1]
    x = torch.randn(2, 5, visual.conv1.weight.shape[0])
    eye = torch.full((5, 5), float("-inf")).fill_diagonal_(0.0)
    y = last.ln_1(x)
    attn = last.attn
    own = attn(y, y, y, attn_mask=eye, need_weights=False)[0] if attn.batch_first else \
        attn(*(y.transpose(0, 1),) * 3, attn_mask=eye, need_weights=False)[0].transpose(0, 1)
    x1 = last.ls_1(own) + x[:, :1]
    expected = x1 + last.ls_2(last.mlp(last.ln_2(x1)))
    assert torch.allclose(value_path_block(last, x), expected, atol=1e-5)


def test_position_embedding_of_a_non_square_grid_keeps_rows_and_columns():
    """A (1 + gh*gw)×D embedding is row-major over a gh×gw grid: channel 0 holds the row index and channel 1
    the column index of each patch. Resized to another grid, rows stay rows (channel 0 constant along each
    output row, equal to the first/last input row at the edges of a bicubic resize with edge padding) and
    columns stay columns; the CLS row is unchanged."""
    from pixelclip.clip.dense import interpolate_positional_embedding

    gh, gw = 2, 3
    rows = torch.arange(gh, dtype=torch.float32).repeat_interleave(gw)
    cols = torch.arange(gw, dtype=torch.float32).repeat(gh)
    pos = torch.cat([torch.tensor([[7.0, -7.0]]), torch.stack([rows, cols], dim=1)])
    out = interpolate_positional_embedding(pos, (gh, gw), (4, 6))
    assert out.shape == (1 + 4 * 6, 2)
    assert torch.equal(out[0], pos[0])
    grid = out[1:].reshape(4, 6, 2)
    # channel 0 depends on the row only, channel 1 on the column only
    assert torch.allclose(grid[..., 0], grid[:, :1, 0].expand(4, 6), atol=1e-6)
    assert torch.allclose(grid[..., 1], grid[:1, :, 1].expand(4, 6), atol=1e-6)
    # a linear ramp is resized along its own axis: increasing, from about 0 to about gh-1 / gw-1
    assert bool((grid[1:, 0, 0] >= grid[:-1, 0, 0]).all()) and bool((grid[0, 1:, 1] >= grid[0, :-1, 1]).all())
    assert float(grid[-1, 0, 0]) > 0.5 * (gh - 1) and float(grid[0, -1, 1]) > 0.5 * (gw - 1)
