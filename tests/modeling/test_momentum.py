"""The EMA teacher follows the formula and touches only trainable weights."""
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
