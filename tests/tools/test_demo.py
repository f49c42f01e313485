"""tools/demo.py in this process: what its overlay says about the model that produced it."""
import sys

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from PIL import Image

import pixelclip.visualization
from tests.conftest import make_tiny_cfg
from tests.tools.run_tool import REPO
from tests.tools.test_eval_only import _tiny_config


def _demo_titles(tmp_path, monkeypatch, *opts):
    """Run the demo on one tiny image; the panel titles it drew."""
    import runpy

    titles = []
    monkeypatch.setattr(pixelclip.visualization, "save_panels",
                        lambda path, panels, names, *a, **k: titles.append(names))
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    config = _tiny_config(tmp_path / "t.yaml")
    monkeypatch.setattr(sys, "argv", [str(REPO / "tools/demo.py"), "--config-file", str(config),
                                      "--input", str(tmp_path / "images"), "--output", str(tmp_path / "out"),
                                      "--vocabulary", "sky,road", *opts])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "tools/demo.py"), run_name="__main__")
    assert exit_info.value.code == 0
    return titles


def test_the_overlay_names_plain_clip_or_the_pixelclip_checkpoint(tmp_path, monkeypatch):
    plain = _demo_titles(tmp_path, monkeypatch)
    assert plain == [["image", "CLIP PixelCLIP-Tiny-ViT (random weights), not fine-tuned"]]
    torch.manual_seed(0)
    cfg = make_tiny_cfg()
    torch.save({"model": build_model(cfg).state_dict()}, tmp_path / "model_final.pth")
    titles = _demo_titles(tmp_path, monkeypatch, "MODEL.WEIGHTS", str(tmp_path / "model_final.pth"))
    assert titles == [["image", "PixelCLIP (model_final.pth)"]]


def test_the_label_png_is_the_argmax_of_the_models_logits(tmp_path, monkeypatch):
    """The demo's <name>_labels.png holds, at every pixel of the original image, the class of the largest
    logit of the model (the loaded checkpoint, the test mapper's input) over the given vocabulary."""
    from pixelclip.data.mappers import SemanticTestMapper

    torch.manual_seed(0)
    cfg = make_tiny_cfg(**{"INPUT.MIN_SIZE_TEST": 64, "INPUT.MAX_SIZE_TEST": 256})  # _tiny_config's model and sizes
    model = build_model(cfg).eval()
    torch.save({"model": model.state_dict()}, tmp_path / "model_final.pth")
    (tmp_path / "images").mkdir()  # the helper adds a.png
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "images" / "b.png")
    _demo_titles(tmp_path, monkeypatch, "MODEL.WEIGHTS", str(tmp_path / "model_final.pth"))
    saved = np.array(Image.open(tmp_path / "out" / "b_labels.png"))
    model.set_vocabulary(["sky", "road"])
    with torch.no_grad():
        logits = model([SemanticTestMapper(cfg)({"file_name": str(tmp_path / "images" / "b.png")})])[0]["sem_seg"]
    assert logits.shape == (2, 20, 24) and saved.shape == (20, 24)
    assert np.array_equal(saved, logits.argmax(0).numpy())
