"""MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING: a training step with activation checkpointing gives the loss and
gradients of the step without it. Recomputation repeats the same float32 kernels on the same inputs in the
same order (deterministic on CPU), so the two steps are compared for exact equality."""
import copy

import pytest
import torch
import torch.utils.checkpoint
from detectron2.modeling import build_model

from tests.conftest import make_tiny_cfg
from tests.modeling.test_training_step import _batch


def _step(model):
    loss = model(_batch())["loss_masks"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("model_name,mode", [("PixelCLIP-Tiny-ViT", "value"), ("PixelCLIP-Tiny-ViT", "naclip"),
                                             ("PixelCLIP-Tiny-ConvNeXt", "value")])
def test_checkpointed_step_gives_the_same_loss_and_gradients(model_name, mode, monkeypatch):
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append((getattr(fn, "__name__", type(fn).__name__), kwargs.get("use_reentrant")))
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting)
    cfg = make_tiny_cfg(model_name, **{"MODEL.PIXELCLIP.CLIP_FINETUNE": "full", "MODEL.PIXELCLIP.DENSE_MODE": mode})
    model = build_model(cfg).train()
    twin = copy.deepcopy(model)  # the same weights and EMA teacher
    twin.backbone.gradient_checkpointing = True
    loss_off, grads_off = _step(model)
    assert calls == []
    loss_on, grads_on = _step(twin)
    visual = model.backbone.visual
    blocks = (len(visual.transformer.resblocks) if hasattr(visual, "transformer")
              else sum(len(s.blocks) for s in visual.trunk.stages))
    # the student's blocks only (once each, non-reentrant); the no-grad teacher runs without checkpoints
    assert len(calls) == blocks and all(reentrant is False for _, reentrant in calls)
    assert torch.equal(loss_on, loss_off)
    assert grads_on.keys() == grads_off.keys() and any(k.startswith("backbone.") for k in grads_on)
    for name in grads_off:
        assert torch.equal(grads_on[name], grads_off[name]), name


def test_the_config_key_reaches_the_backbone_and_is_inactive_without_autograd():
    cfg = make_tiny_cfg()
    assert cfg.MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING is False
    cfg.MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING = True
    model = build_model(cfg).eval()
    assert model.backbone.gradient_checkpointing is True
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model.backbone(images)["clip_dense"]
    assert out.grad_fn is None and out.shape[:2] == (1, model.backbone.output_shape()["clip_dense"].channels)
