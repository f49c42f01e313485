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
