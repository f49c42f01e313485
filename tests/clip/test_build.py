"""Building CLIP from names, tags and files; CLIP_FINETUNE policies."""
import pytest
import torch

from pixelclip.clip.build import ClipWeightsError, apply_finetune_policy, build_clip_model


def test_missing_checkpoint_file_names_the_file(tmp_path):
    missing = tmp_path / "no_such_clip.pt"
    with pytest.raises(ClipWeightsError, match="no_such_clip.pt"):
        build_clip_model("PixelCLIP-Tiny-ViT", str(missing))


def test_unknown_tag_and_architecture_are_clear():
    with pytest.raises(ClipWeightsError, match="Unknown pretrained tag 'not-a-tag'"):
        build_clip_model("ViT-B-16", "not-a-tag")
    with pytest.raises(ClipWeightsError, match="Unknown CLIP architecture"):
        build_clip_model("ViT-Q-99", "")


def test_known_tag_without_network_says_how_to_provide_weights():
    with pytest.raises(ClipWeightsError, match="CLIP_PRETRAINED to its local path"):
        build_clip_model("ViT-B-16", "openai")


def test_local_checkpoint_round_trip(tmp_path):
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    loaded, tokenizer = build_clip_model("PixelCLIP-Tiny-ViT", str(path))
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert tokenizer(["a dog"]).shape[-1] == 32


def test_corrupt_checkpoint_is_reported(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipWeightsError, match="broken.pt"):
        build_clip_model("PixelCLIP-Tiny-ViT", str(path))


@pytest.mark.parametrize("policy", ["attention", "full", "conv", "prompt", "none"])
def test_finetune_policies_select_parameters(policy):
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    names = apply_finetune_policy(model.visual, policy)
    all_names = [n for n, _ in model.visual.named_parameters()]
    expected = {
        "attention": [n for n in all_names if "attn" in n or "position" in n],
        "full": all_names,
        "conv": [n for n in all_names if "conv" in n],
        "prompt": [],
        "none": [],
    }[policy]
    assert names == expected
    assert {n for n, p in model.visual.named_parameters() if p.requires_grad} == set(expected)
    if policy == "attention":
        assert "positional_embedding" in names and any("attn.in_proj_weight" in n for n in names)
        assert not any("mlp" in n for n in names)


def test_unknown_policy_is_rejected():
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    with pytest.raises(ValueError, match="CLIP_FINETUNE"):
        apply_finetune_policy(model.visual, "lora")


def test_conv_policy_trains_the_depthwise_convolutions_of_a_convnext():
    """``conv`` on a ConvNeXt: the depthwise convolution (``conv_dw``, weight and bias) of every block of every
    stage trains; nothing else does (the blocks' MLPs and norms, the stem, the head)."""
    model, _ = build_clip_model("PixelCLIP-Tiny-ConvNeXt", "")
    visual = model.visual
    names = apply_finetune_policy(visual, "conv")
    blocks = [f"trunk.stages.{i}.blocks.{j}" for i, stage in enumerate(visual.trunk.stages) for j in range(len(stage.blocks))]
    assert len(blocks) == 12
    assert set(names) == {f"{b}.conv_dw.{p}" for b in blocks for p in ("weight", "bias")}
    assert {n for n, p in visual.named_parameters() if p.requires_grad} == set(names)


@pytest.mark.parametrize("policy", ["attention", "full", "conv", "none"])
def test_the_policy_is_applied_whatever_requires_grad_was_before(policy):
    """Applying a policy to a tower that is already (partly) frozen, or to one that trains everything, gives the
    same selection: ``requires_grad`` is set from the name alone."""
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    expected = apply_finetune_policy(model.visual, policy)
    for p in model.visual.parameters():
        p.requires_grad_(False)
    assert apply_finetune_policy(model.visual, policy) == expected
    for p in model.visual.parameters():
        p.requires_grad_(True)
    assert apply_finetune_policy(model.visual, policy) == expected
    assert {n for n, p in model.visual.named_parameters() if p.requires_grad} == set(expected)


def test_built_model_is_float32():
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
