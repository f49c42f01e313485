"""pixelclip_san.layout against the layout SAN's own code gives a tiny CLIP (fixtures/san_tiny_layout.json,
recorded with MendelXu/SAN and open_clip 2.16: names, shapes, and which open_clip tensor each SAN
tensor is)."""
import pytest
import torch

from pixelclip_san.errors import SanWeightsError
from pixelclip_san.layout import (
    SAN_POSITIONAL,
    SAN_TEXT_EXTRAS,
    clip_depth,
    remap_text,
    remap_visual,
    san_block_counts,
    san_visual_key,
)
from tests.projects.san.san_fixture import LAYOUT, SPLIT, tiny_clip_state_dict


def test_open_clip_layout_is_the_one_san_builds():
    """The export is written with this environment's open_clip; SAN loads it with 2.16, strictly: the
    names and shapes of the same architecture must agree."""
    ours = tiny_clip_state_dict(0)
    assert {k: list(v.shape) for k, v in ours.items()} == LAYOUT["open_clip_state_dict"]


def test_remap_is_the_map_san_code_makes():
    clip_sd = tiny_clip_state_dict(0)
    mapped = {**remap_visual(clip_sd, SPLIT), **remap_text(clip_sd)}
    recorded = {k: v for k, v in LAYOUT["san_to_open_clip"].items() if v is not None and v != "attn_mask"}
    assert set(mapped) == set(recorded)  # every SAN CLIP tensor, nothing else
    for san_key, clip_key in recorded.items():
        assert mapped[san_key] is clip_sd[clip_key], san_key
        assert list(mapped[san_key].shape) == LAYOUT["san_state_dict"][san_key]


def test_san_own_tensors_are_the_ones_recorded():
    own = sorted(k for k, v in LAYOUT["san_to_open_clip"].items() if v is None or v == "attn_mask")
    assert own == sorted(SAN_TEXT_EXTRAS)
    # SAN trains its positional embedding and background embedding, nothing else of the CLIP side
    assert LAYOUT["san_trainable"] == [SAN_POSITIONAL, "ov_classifier.bg_embed"]
    assert LAYOUT["san_clip_activations"] == ["QuickGELU"]


def test_block_counts_and_depth():
    assert san_block_counts(LAYOUT["san_state_dict"]) == (SPLIT, 1)
    assert clip_depth(LAYOUT["open_clip_state_dict"]) == 4


@pytest.mark.parametrize("clip_key, san_key", [
    ("visual.transformer.resblocks.2.mlp.c_fc.weight", "clip_visual_extractor.resblocks.2.mlp.c_fc.weight"),
    ("visual.transformer.resblocks.3.attn.in_proj_weight", "clip_rec_head.resblocks.0.attn.in_proj_weight"),
    ("visual.transformer.resblocks.11.ln_2.bias", "clip_rec_head.resblocks.8.ln_2.bias"),
    ("visual.conv1.weight", "clip_visual_extractor.conv1.weight"),
    ("visual.class_embedding", "clip_visual_extractor.class_embedding"),
    ("visual.ln_post.bias", "clip_rec_head.ln_post.bias"),
    ("visual.proj", "clip_rec_head.proj"),
    ("visual.attn_pool.query", None),
    ("visual.trunk.stem.0.weight", None),
    ("transformer.resblocks.0.ln_1.weight", None),
])
def test_single_keys(clip_key, san_key):
    assert san_visual_key(clip_key, SPLIT) == san_key


def test_refuses_what_san_cannot_hold():
    with pytest.raises(SanWeightsError, match="not an open_clip ViT"):
        remap_visual({"visual.trunk.stem.0.weight": torch.zeros(1)}, SPLIT)
    clip_sd = tiny_clip_state_dict(0)
    with pytest.raises(SanWeightsError, match="outside the CLIP's 4 blocks"):
        remap_visual(clip_sd, 4)
    with pytest.raises(SanWeightsError, match="no place in SAN"):
        remap_visual({**clip_sd, "visual.attn_pool.query": torch.zeros(2)}, SPLIT)
