"""CLIP_FINETUNE full with a DENSE_MODE that skips part of the last ViT block: what the mode never uses is
frozen, so every trainable parameter receives a gradient (what DistributedDataParallel requires; the gloo
run is tests/test_distributed_dense_modes.py)."""
import pytest
import torch
from detectron2.modeling import build_model

from pixelclip.clip.dense_modes import DENSE_MODES
from tests.conftest import make_tiny_cfg
from tests.modeling.test_training_step import _batch


@pytest.mark.parametrize("mode", DENSE_MODES)
def test_every_trainable_parameter_gets_a_gradient(mode):
    torch.manual_seed(0)
    model = build_model(make_tiny_cfg(**{"MODEL.PIXELCLIP.CLIP_FINETUNE": "full",
                                         "MODEL.PIXELCLIP.DENSE_MODE": mode})).train()
    model(_batch())["loss_masks"].backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    without_grad = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    assert without_grad == set()
    visual = model.backbone.visual
    last = len(visual.transformer.resblocks) - 1
    ffn = {f"backbone.clip_model.visual.{n}" for n, _ in visual.named_parameters()
           if n.startswith((f"transformer.resblocks.{last}.ln_2.", f"transformer.resblocks.{last}.mlp."))}
    assert ffn  # the tiny ViT has a feed-forward half in its last block
    if mode in ("clearclip", "naclip"):  # no FFN in these modes: frozen although the policy is full
        assert not ffn & trainable
        assert not {n.split("visual.", 1)[1] for n in ffn} & set(model.backbone.trainable_names)
    else:
        assert ffn <= trainable
    # everything else of the image tower trains under the full policy
    tower = {f"backbone.clip_model.visual.{n}" for n, _ in visual.named_parameters()}
    assert tower - ffn <= trainable
