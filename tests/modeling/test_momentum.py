"""The EMA teacher follows the formula and touches only trainable weights."""
import pytest
import torch

from pixelclip.clip.build import apply_finetune_policy, build_clip_model
from pixelclip.modeling.momentum import MomentumEncoder


def test_one_update_equals_the_formula_and_frozen_weights_stay():
    torch.manual_seed(0)
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", "")
    student = model.visual
    trainable = set(apply_finetune_policy(student, "attention"))
    teacher = MomentumEncoder(student, momentum=0.9)
    before = {k: v.clone() for k, v in teacher.encoder.named_parameters()}
    with torch.no_grad():
        for name, p in student.named_parameters():
            p.add_(1.0)  # move every student weight, frozen ones too
    teacher.update(student)
    for name, p in teacher.encoder.named_parameters():
        if name in trainable:
            expected = 0.9 * before[name] + 0.1 * dict(student.named_parameters())[name]
            assert torch.allclose(p, expected, atol=1e-6), name
        else:
            assert torch.equal(p, before[name]), name
        assert not p.requires_grad
    teacher.train()
    assert not teacher.training
    assert teacher(torch.randn(1, 3, 64, 64)).shape == (1, 32, 4, 4)


def _moved_pair(momentum):
    """A tiny ViT student (``full`` policy), its teacher at ``momentum``, then every student weight + 1 and one update."""
    torch.manual_seed(0)
    student = build_clip_model("PixelCLIP-Tiny-ViT", "")[0].visual
    apply_finetune_policy(student, "full")
    teacher = MomentumEncoder(student, momentum=momentum)
    before = {k: v.clone() for k, v in teacher.encoder.named_parameters()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    teacher.update(student)
    return dict(student.named_parameters()), before, dict(teacher.encoder.named_parameters())


def test_the_ends_of_the_momentum_range_freeze_or_copy_the_teacher():
    """MODEL.PIXELCLIP.MOMENTUM is any number in [0, 1] (pixelclip/config.py): m = 1 keeps the teacher where it
    started (ξ <- 1·ξ + 0·θ), m = 0 makes it the student (ξ <- θ)."""
    _, before, after = _moved_pair(1.0)
    assert all(torch.equal(after[k], before[k]) for k in before)
    student, _, after = _moved_pair(0.0)
    assert all(torch.equal(after[k], student[k]) for k in student)
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match="MOMENTUM"):
            MomentumEncoder(torch.nn.Linear(1, 1), momentum=bad)


def test_config_momentum_reaches_the_teacher_of_a_built_model():
    """MODEL.PIXELCLIP.MOMENTUM = 0.5: after one training step the teacher's trainable weights are the average of
    the initial weights and the student's (the EMA step runs before the student is updated)."""
    from detectron2.modeling import build_model

    from tests.modeling.test_pixelclip import _batch
    from tests.conftest import make_tiny_cfg

    torch.manual_seed(0)
    model = build_model(make_tiny_cfg(**{"MODEL.PIXELCLIP.MOMENTUM": 0.5})).train()
    assert model.teacher.momentum == 0.5
    start = {k: v.clone() for k, v in model.teacher.encoder.named_parameters()}
    with torch.no_grad():
        model.backbone.visual.positional_embedding.add_(2.0)  # trainable under the default 'attention' policy
    model(_batch())
    moved = model.teacher.encoder.positional_embedding
    torch.testing.assert_close(moved, start["positional_embedding"] + 1.0, rtol=0, atol=1e-6)
