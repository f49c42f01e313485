"""pixelclip/data/mappers/strong_color.py: the strong view keeps the channel order of its input (RGB or
BGR), grays with ITU-R 601 luma of the *RGB* colour, and grays at the release's rate (0.2).

These tests call StrongColorAugmentation directly (and the training mapper built with explicit
keyword arguments), so a geometric extra of the mapper (a cutout box) does not enter them."""
import random

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from PIL import Image

from pixelclip.data.mappers import PixelCLIPUnlabeledMapper
from pixelclip.data.mappers.strong_color import StrongColorAugmentation
from pixelclip.data.mask_io import encode_masks, write_mask_file
from tests.conftest import make_tiny_cfg

RED = (200, 0, 0)  # RGB


def _seed(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _image(colour_rgb, image_format, h=4, w=6):
    rgb = np.empty((h, w, 3), dtype=np.uint8)
    rgb[:] = colour_rgb
    return rgb[:, :, ::-1].copy() if image_format == "BGR" else rgb


def _luma(rgb):
    """ITU-R 601-2 luma, as PIL's convert("L") (and torchvision's Grayscale) compute it."""
    r, g, b = (float(c) for c in rgb)
    return r * 299 / 1000 + g * 587 / 1000 + b * 114 / 1000


@pytest.mark.parametrize("image_format", ["RGB", "BGR"])
def test_identity_settings_return_the_input_in_its_own_channel_order(image_format):
    aug = StrongColorAugmentation(image_format, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
    image = _image(RED, image_format)
    for seed in range(3):
        _seed(seed)
        np.testing.assert_array_equal(aug(image), image)


@pytest.mark.parametrize("image_format", ["RGB", "BGR"])
def test_red_stays_red_through_brightness_jitter_and_blur(image_format):
    """Brightness only scales the channels (Pillow's ImageEnhance.Brightness blends with black) and a
    blur leaves a uniform image uniform: the red channel stays the only non-zero one, wherever
    ``image_format`` puts it."""
    aug = StrongColorAugmentation(image_format, jitter_prob=1.0, brightness=0.5, contrast=0.0, saturation=0.0,
                                  hue=0.0, grayscale_prob=0.0, blur_prob=1.0)
    red_channel = 0 if image_format == "RGB" else 2
    others = [c for c in range(3) if c != red_channel]
    values = set()
    for seed in range(6):
        _seed(seed)
        out = aug(_image(RED, image_format))
        assert out.shape == (4, 6, 3) and out.dtype == np.uint8
        assert (out[..., others] == 0).all(), f"seed {seed}: the red moved to another channel"
        # brightness factor in [0.5, 1.5]: 200 -> [100, 255] (clipped); 1 of rounding slack
        assert (out[..., red_channel] >= 99).all()
        values.add(int(out[0, 0, red_channel]))
    assert len(values) > 1  # the jitter really ran


@pytest.mark.parametrize("image_format", ["RGB", "BGR"])
@pytest.mark.parametrize("colour", [RED, (10, 30, 220), (0, 250, 5)])
def test_grayscale_uses_the_luma_of_the_rgb_colour(image_format, colour):
    """Gray of pure red is 0.299 * 200 ~ 60, not 0.114 * 200 ~ 23 (what a BGR array read as RGB gives)."""
    aug = StrongColorAugmentation(image_format, jitter_prob=0.0, grayscale_prob=1.0, blur_prob=0.0)
    _seed(0)
    out = aug(_image(colour, image_format)).astype(float)
    assert np.abs(out - _luma(colour)).max() <= 1.0  # Pillow's fixed-point luma rounds


def test_grayscale_rate_is_the_release_probability():
    """Release: RandomGrayscale(p=0.2). n = 4000 draws, count ~ Binomial(n, 0.2): mean 800, sd 25.3; the
    bound [674, 926] is mean +- 5 sd (a correct rate falls outside it with probability < 1e-6 for
    any seed), and excludes the rates 0.15 and 0.25 (means 600 and 1000) and the inverted 0.8."""
    aug = StrongColorAugmentation("RGB", jitter_prob=0.0, blur_prob=0.0)  # the default grayscale_prob
    image = np.array([[[200, 10, 10], [10, 200, 10]], [[10, 10, 200], [90, 160, 30]]], dtype=np.uint8)
    _seed(2024)
    n = 4000
    gray = 0
    for _ in range(n):
        out = aug(image)
        is_gray = bool((out == out[..., :1]).all())
        assert is_gray or np.array_equal(out, image)  # with jitter and blur off: gray or untouched
        gray += is_gray
    assert 674 <= gray <= 926, f"{gray} of {n} draws were gray (expected ~800)"


def test_no_grayscale_when_its_probability_is_zero():
    aug = StrongColorAugmentation("RGB", jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
    image = np.array([[[200, 10, 10], [10, 200, 10]]], dtype=np.uint8)
    _seed(0)
    assert all(np.array_equal(aug(image), image) for _ in range(200))


def test_the_configured_strong_view_follows_input_format():
    """from_config must build the strong view for cfg.INPUT.FORMAT: under the same seeds it draws exactly
    what StrongColorAugmentation(FORMAT) draws, and (saturation and gray depend on the order) not what
    the other order's augmentation draws."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    for fmt, other in (("BGR", "RGB"), ("RGB", "BGR")):
        cfg = make_tiny_cfg(**{"INPUT.FORMAT": fmt, "INPUT.STRONG_AUG": True})
        built = PixelCLIPUnlabeledMapper.from_config(cfg, is_train=True)["strong_aug"]
        differs = False
        for seed in range(4):
            _seed(seed)
            got = built(image)
            _seed(seed)
            np.testing.assert_array_equal(got, StrongColorAugmentation(fmt)(image))
            _seed(seed)
            differs |= not np.array_equal(got, StrongColorAugmentation(other)(image))
        assert differs


@pytest.mark.parametrize("image_format", ["RGB", "BGR"])
@pytest.mark.parametrize("strong", ["gray", "brightness"])
def test_mapper_returns_both_views_in_the_image_format(tmp_path, image_format, strong):
    """A pure red PNG through the training mapper (explicit kwargs: no cutout): the weak view and the
    strong view are in ``image_format`` order. Forced gray: the strong view is red's luma (the input
    reached the augmentation in the declared order); brightness only: the red stays in its channel (the
    output came back in that order)."""
    Image.fromarray(_image(RED, "RGB", 8, 12)).save(tmp_path / "red.png")
    mask = np.zeros((1, 8, 12), dtype=bool)
    mask[0, 2:6, 3:9] = True
    write_mask_file(tmp_path / "red.json", {"file_name": "red.png", "height": 8, "width": 12}, encode_masks(mask))
    if strong == "gray":
        aug = StrongColorAugmentation(image_format, jitter_prob=0.0, grayscale_prob=1.0, blur_prob=0.0)
    else:
        aug = StrongColorAugmentation(image_format, jitter_prob=1.0, contrast=0.0, saturation=0.0, hue=0.0,
                                      grayscale_prob=0.0, blur_prob=0.0)
    mapper = PixelCLIPUnlabeledMapper(augmentations=[T.ResizeShortestEdge((8,), 4096, "choice")],
                                      image_format=image_format, strong_aug=aug)
    _seed(0)
    out = mapper({"file_name": str(tmp_path / "red.png"), "mask_file": str(tmp_path / "red.json"), "image_id": 0})
    red_channel = 0 if image_format == "RGB" else 2
    weak = out["image"].numpy()
    assert (weak[red_channel] == 200).all() and (np.delete(weak, red_channel, axis=0) == 0).all()
    strong_view = out["image_strong"].numpy()
    assert strong_view.shape == weak.shape
    if strong == "gray":
        assert np.abs(strong_view.astype(float) - _luma(RED)).max() <= 1.0
    else:
        assert (strong_view[red_channel] >= 99).all() and (np.delete(strong_view, red_channel, axis=0) == 0).all()
    np.testing.assert_array_equal(out["instances"].gt_masks.tensor.numpy(), mask)
