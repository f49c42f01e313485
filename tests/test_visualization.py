"""Overlays, legends and label PNGs."""
import numpy as np
from PIL import Image

from pixelclip.visualization import class_colors, colorize, overlay, save_label_png, save_panels


def test_legend_lists_the_vocabulary_and_png_is_written(tmp_path):
    names = ["sky", "road", "tree, bush"]
    colors = class_colors(len(names))
    image = np.full((20, 30, 3), 128, np.uint8)
    labels = np.zeros((20, 30), np.int64)
    labels[10:] = 2
    legend = save_panels(str(tmp_path / "p.png"), [image, overlay(image, labels, colors)], ["image", "pred"], names, colors)
    assert legend == names
    assert save_panels(str(tmp_path / "q.png"), [image], ["x"], names, colors, present=[2, 0]) == ["sky", "tree, bush"]
    assert Image.open(tmp_path / "p.png").size[0] > 30


def test_colorize_ignores_and_label_png_depth(tmp_path):
    colors = class_colors(300)
    assert len({tuple(c) for c in colors}) > 290
    labels = np.array([[0, 255], [299, 5]])
    rgb = colorize(labels, colors, ignore_label=255)
    assert (rgb[0, 1] == 0).all() and (rgb[1, 0] == colors[299]).all()
    save_label_png(str(tmp_path / "l.png"), labels)
    assert np.array_equal(np.array(Image.open(tmp_path / "l.png")), labels)
    save_label_png(str(tmp_path / "s.png"), np.array([[1, 2]]))
    assert Image.open(tmp_path / "s.png").mode == "L"


def test_model_title_says_plain_clip_unless_fine_tuned_weights_are_loaded():
    from pixelclip.visualization import model_title
    from tests.conftest import make_tiny_cfg

    cfg = make_tiny_cfg()
    assert model_title(cfg) == "CLIP PixelCLIP-Tiny-ViT (random weights), not fine-tuned"
    cfg.MODEL.PIXELCLIP.CLIP_MODEL_NAME, cfg.MODEL.PIXELCLIP.CLIP_PRETRAINED = "ViT-B-16-quickgelu", "openai"
    assert model_title(cfg) == "CLIP ViT-B-16-quickgelu (openai), not fine-tuned"
    cfg.MODEL.PIXELCLIP.DENSE_MODE = "naclip"
    assert model_title(cfg) == "CLIP ViT-B-16-quickgelu (openai, naclip), not fine-tuned"
    cfg.MODEL.WEIGHTS = "output/pixelclip_vitb/model_final.pth"
    assert model_title(cfg) == "PixelCLIP (model_final.pth, naclip)"
    cfg.MODEL.PIXELCLIP.DENSE_MODE = "value"
    assert model_title(cfg) == "PixelCLIP (model_final.pth)"


def test_colorize_and_overlay_by_hand():
    """Each id its colour; ids past the table (here 3) and the ignore label black; the overlay is
    ⌊(1 - alpha) · image + alpha · colour⌋ per channel."""
    colors = np.array([[255, 0, 0], [0, 200, 0], [0, 0, 100]], dtype=np.uint8)
    labels = np.array([[0, 1, 2, 3], [-1, 2, 1, 0]])
    rgb = colorize(labels, colors)
    assert rgb[0].tolist() == [[255, 0, 0], [0, 200, 0], [0, 0, 100], [0, 0, 0]]
    assert rgb[1].tolist() == [[0, 0, 0], [0, 0, 100], [0, 200, 0], [255, 0, 0]]
    assert colorize(labels, colors, ignore_label=2)[0, 2].tolist() == [0, 0, 0]
    image = np.full((2, 4, 3), 100, np.uint8)
    blended = overlay(image, labels, colors, alpha=0.75)
    assert blended[0, 0].tolist() == [216, 25, 25]  # 25 + 0.75 · 255 = 216.25; 25
    assert blended[0, 1].tolist() == [25, 175, 25] and blended[0, 3].tolist() == [25, 25, 25]


def test_label_png_is_8_bit_up_to_id_255_and_16_bit_from_256(tmp_path):
    for top, mode in ((255, "L"), (256, "I;16")):
        labels = np.array([[0, 7], [top, 1]])
        save_label_png(str(tmp_path / f"{top}.png"), labels)
        saved = Image.open(tmp_path / f"{top}.png")
        assert saved.mode == mode
        assert np.array(saved).tolist() == labels.tolist()
