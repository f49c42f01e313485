"""MODEL.PIXELCLIP.DENSE_MODE reaches every dense path: student, EMA teacher (or the no-momentum
teacher) and inference use the same last block."""
import pytest
import torch
from detectron2.modeling import build_model

import pixelclip.clip.dense as dense_module
from pixelclip.clip import dense_modes
from tests.conftest import make_tiny_cfg
from tests.modeling.test_pixelclip import _batch


@pytest.fixture
def calls(monkeypatch):
    """Count the calls of every last-block function (value path included)."""
    counts = {}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(dense_module, "value_path_block", spy("value", dense_module.value_path_block))
    for name, fn in list(dense_modes.VIT_LAST_BLOCKS.items()):
        monkeypatch.setitem(dense_modes.VIT_LAST_BLOCKS, name, spy(name, fn))
    return counts


@pytest.mark.parametrize("use_momentum", [True, False])
def test_training_step_uses_the_mode_for_student_and_teacher(calls, use_momentum):
    torch.manual_seed(0)
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.DENSE_MODE = "sclip"
    cfg.MODEL.PIXELCLIP.USE_MOMENTUM = use_momentum
    model = build_model(cfg).train()
    assert model.backbone.dense_mode == "sclip" and model.dense_mode == "sclip"
    loss = model(_batch())["loss_masks"]
    loss.backward()
    assert calls == {"sclip": 2}  # one teacher pass (no grad) and one student pass
    calls.clear()
    model.eval().set_vocabulary(["sky", "road"])
    with torch.no_grad():
        model([{"image": torch.zeros(3, 64, 64, dtype=torch.uint8)}])
    assert calls == {"sclip": 1}


def test_default_mode_is_the_release_value_path(calls):
    model = build_model(make_tiny_cfg()).train()
    assert model.backbone.dense_mode == "value"
    model(_batch())
    assert calls == {"value": 2}


def test_backbone_output_is_the_modes_dense_features():
    torch.manual_seed(0)
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.DENSE_MODE = "naclip"
    model = build_model(cfg).eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model.backbone(images)["clip_dense"]
        expected = dense_module.dense_features(model.backbone.visual, images, "naclip")
    assert torch.equal(out, expected)


def test_unknown_mode_in_config_is_a_clear_error():
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.DENSE_MODE = "maskclip+"
    with pytest.raises(ValueError, match="DENSE_MODE"):
        build_model(cfg)
