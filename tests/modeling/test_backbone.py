"""PixelCLIPBackbone: Detectron2's backbone contract (output_shape, size_divisibility) against the tensors it
returns, and the CLIP_FINETUNE policy of the config reaching the model's parameters."""
import pytest
import torch
from detectron2.modeling import BACKBONE_REGISTRY, build_model

from tests.conftest import make_tiny_cfg


def test_output_shape_describes_the_output():
    """ShapeSpec(channels, stride): a B×3×H×W input gives B×channels×(H/stride)×(W/stride), stride the ViT's
    patch size (16 in the tiny config), and padding to size_divisibility keeps the grid exact. (ConvNeXt's
    stride 32: tests/modeling/test_paper_backbones.py.)"""
    cfg, stride = make_tiny_cfg(), 16
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg, None).eval()
    spec = backbone.output_shape()
    assert list(spec) == ["clip_dense"]
    assert spec["clip_dense"].stride == stride and backbone.size_divisibility == stride
    assert spec["clip_dense"].channels == 32  # embed_dim of the tiny model configs
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 2 * stride, 3 * stride))["clip_dense"]
    assert out.shape == (2, 32, 2, 3)


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("policy", ["full", "conv", "none"])
def test_config_finetune_policy_decides_what_trains(policy):
    """CLIP_FINETUNE from the config: the image tower's trainable parameters are exactly the policy's, the text
    tower never trains, prompts and decoder always do (LEARN_PROMPTS default)."""
    model = build_model(make_tiny_cfg(**{"MODEL.PIXELCLIP.CLIP_FINETUNE": policy}))
    names = [n for n, _ in model.backbone.visual.named_parameters()]
    expected_visual = {"full": set(names), "conv": {n for n in names if "conv" in n}, "none": set()}[policy]
    trainable = _trainable(model)
    visual = {n[len("backbone.clip_model.visual."):] for n in trainable if n.startswith("backbone.clip_model.visual.")}
    assert visual == expected_visual
    assert set(model.backbone.trainable_names) == expected_visual
    assert not {n for n in trainable if n.startswith("backbone.clip_model.") and ".visual." not in n}
    assert "prompts.prompt_tokens" in trainable
    assert {n for n, _ in model.decoder.named_parameters()} == {n[len("decoder."):] for n in trainable
                                                               if n.startswith("decoder.")}
    assert not any(n.startswith("teacher.") for n in trainable)


def test_frozen_prompts_and_a_frozen_tower_leave_only_the_decoder():
    """LEARN_PROMPTS False with CLIP_FINETUNE none: the decoder is all that trains."""
    model = build_model(make_tiny_cfg(**{"MODEL.PIXELCLIP.CLIP_FINETUNE": "none", "MODEL.PIXELCLIP.LEARN_PROMPTS": False}))
    assert _trainable(model) == {"decoder." + n for n, _ in model.decoder.named_parameters()}
