"""CAT-Seg's split attention names: the split is nn.MultiheadAttention's own q/k/v order, merge inverts it,
and the table of CLIP_PRETRAINED values agrees with open_clip's architectures and the PixelCLIP configs."""
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from pixelclip import get_pixelclip_cfg
from pixelclip_catseg.layout import CATSEG_CLIPS, CATSegLayoutError, catseg_clip, fit_problems, merge_attention, \
    split_attention

ROOT = Path(__file__).resolve().parents[3]


def test_split_is_multihead_attentions_separate_projection_order():
    # independent reference: torch's attention with packed weights vs with separate q/k/v weights (the path
    # CAT-Seg's Attention takes: _qkv_same_embed_dim False, in_proj_bias still packed)
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
    sd = {"blk.attn." + k: v.detach() for k, v in mha.state_dict().items()}
    split = split_attention(sd)
    assert sorted(split) == sorted(["blk.attn.q_proj_weight", "blk.attn.k_proj_weight", "blk.attn.v_proj_weight",
                                    "blk.attn.in_proj_bias", "blk.attn.out_proj.weight", "blk.attn.out_proj.bias"])
    x = torch.randn(5, 3, 8)
    packed, _ = mha(x, x, x, need_weights=False)
    separate, _ = F.multi_head_attention_forward(
        x, x, x, 8, 2, None, split["blk.attn.in_proj_bias"], None, None, False, 0.0,
        split["blk.attn.out_proj.weight"], split["blk.attn.out_proj.bias"], training=False, need_weights=False,
        use_separate_proj_weight=True, q_proj_weight=split["blk.attn.q_proj_weight"],
        k_proj_weight=split["blk.attn.k_proj_weight"], v_proj_weight=split["blk.attn.v_proj_weight"])
    torch.testing.assert_close(separate, packed, atol=1e-6, rtol=0)
    back = merge_attention(split)
    assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_split_and_merge_refuse_malformed_entries():
    with pytest.raises(CATSegLayoutError, match="3D×D"):
        split_attention({"a.attn.in_proj_weight": torch.zeros(5, 2)})
    with pytest.raises(CATSegLayoutError, match="come in threes"):
        merge_attention({"a.attn.q_proj_weight": torch.zeros(2, 2), "a.attn.v_proj_weight": torch.zeros(2, 2)})
    with pytest.raises(CATSegLayoutError, match="come in threes"):
        merge_attention({"a.attn.k_proj_weight": torch.zeros(2, 2)})


def test_clip_pretrained_names_and_refusals():
    assert catseg_clip("ViT-B/16").guidance_blocks == (3, 7) and catseg_clip("ViT-B/16").clip_resolution == 384
    assert catseg_clip("ViT-L/14@336px").guidance_blocks == (7, 15) and catseg_clip("ViT-L/14@336px").clip_resolution == 336
    with pytest.raises(CATSegLayoutError, match="ViT-H"):
        catseg_clip("ViT-H")
    with pytest.raises(CATSegLayoutError, match="not one this export supports"):
        catseg_clip("ViT-B-16")  # open_clip's spelling is not CAT-Seg's


@pytest.mark.parametrize("name", sorted(CATSEG_CLIPS))
def test_table_agrees_with_open_clip_and_the_pixelclip_config(name):
    spec = CATSEG_CLIPS[name]
    config = open_clip.get_model_config(spec.open_clip_name)
    vision = config["vision_cfg"]
    assert config.get("quick_gelu") is True  # CAT-Seg's vendored OpenAI CLIP runs QuickGELU
    assert (vision["width"], vision["layers"], vision["patch_size"]) == (spec.width, spec.layers, spec.patch)
    assert (vision["image_size"] // spec.patch) ** 2 + 1 == spec.positions
    assert max(spec.guidance_blocks) < spec.layers
    cfg = get_pixelclip_cfg(str(ROOT / spec.pixelclip_config))
    assert cfg.MODEL.PIXELCLIP.CLIP_MODEL_NAME == spec.open_clip_name
    assert cfg.MODEL.PIXELCLIP.CLIP_PRETRAINED == "openai"
    assert "openai" in open_clip.list_pretrained_tags_by_model(spec.open_clip_name)


def test_vitl_336_config_keeps_catseg_grid():
    cfg = get_pixelclip_cfg(str(ROOT / "projects/CAT-Seg/configs/pixelclip_vitl_336.yaml"))
    p = cfg.MODEL.PIXELCLIP
    assert tuple(p.CLIP_RESOLUTION) == (336, 336) and 336 // 14 == 24  # CAT-Seg-L's 24x24 patches
    assert p.CLIP_FINETUNE == "attention" and cfg.OUTPUT_DIR == "output/pixelclip_vitl_336"


def test_fit_problems_names_the_sizes():
    sd = {"visual.conv1.weight": torch.zeros(128, 3, 16, 16), "visual.positional_embedding": torch.zeros(17, 128),
          "visual.transformer.resblocks.0.attn.in_proj_weight": torch.zeros(384, 128)}
    text = fit_problems(sd, CATSEG_CLIPS["ViT-B/16"])
    assert "width 128 (CAT-Seg's ViT-B/16: 768)" in text and "layers 1" in text and "positions 17" in text
    with pytest.raises(CATSegLayoutError, match="visual.conv1.weight"):
        fit_problems({}, CATSEG_CLIPS["ViT-B/16"])
