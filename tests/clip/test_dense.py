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
