"""The training mapper's non-default options, checked against Detectron2's transforms applied by hand:
SSD colour after the crop when no flip is configured, BGR input, crop types, the test-time resize,
MAX_MASKS from the config, and DINO mode (no mask file: one crop, nothing counted as skipped)."""
import random

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from detectron2.projects.point_rend import ColorAugSSDTransform
from PIL import Image

from pixelclip.data import build_mapper
from pixelclip.data.mappers import PixelCLIPUnlabeledMapper
from pixelclip.data.mask_io import encode_masks, write_mask_file
from tests.conftest import make_tiny_cfg

H, W = 48, 64


def _seed(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _image():
    """Smooth random colours (8-pixel blocks): resizing and colour changes do not commute on it."""
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, size=(H // 8, W // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)


def _masks():
    """Four masks, areas 1200 > 600 > 400 > 60 (none of them empty after any 40×40 crop of the image or
    its 60-short-side resize: the first one covers most of it)."""
    m = np.zeros((4, H, W), dtype=bool)
    m[0, 4:44, 2:32] = True
    m[1, 10:40, 34:54] = True
    m[2, 24:44, 40:60] = True
    m[3, 0:6, 50:60] = True
    return m


def _sample(tmp_path, image=None, masks=None, name="im"):
    image = _image() if image is None else image
    masks = _masks() if masks is None else masks
    Image.fromarray(image).save(tmp_path / f"{name}.png")
    write_mask_file(tmp_path / f"{name}.json", {"file_name": f"{name}.png", "height": image.shape[0],
                                                "width": image.shape[1]}, encode_masks(masks))
    return {"file_name": str(tmp_path / f"{name}.png"), "mask_file": str(tmp_path / f"{name}.json"), "image_id": name}


def _cfg(**overrides):
    base = {"INPUT.MIN_SIZE_TRAIN": (60,), "INPUT.MAX_SIZE_TRAIN": 4096, "INPUT.CROP.ENABLED": True,
            "INPUT.CROP.TYPE": "absolute", "INPUT.CROP.SIZE": (40, 40), "INPUT.RANDOM_FLIP": "none",
            "INPUT.COLOR_AUG_SSD": True, "INPUT.STRONG_AUG": False, "MODEL.PIXELCLIP.MAX_MASKS": 0}
    base.update(overrides)
    return make_tiny_cfg(**base)


def _by_hand(image, masks, augs, image_format):
    """Resize and crop (D2's augmentations drawn in order, numpy's RNG), SSD colour on the crop (Python's RNG),
    then the flip; masks through the same geometric transforms, emptied ones dropped, largest first."""
    ssd = ColorAugSSDTransform(image_format)
    geometric = []
    for aug in augs:
        if isinstance(aug, T.RandomFlip):
            image = ssd.apply_image(image)
            ssd = None
        tfm = aug.get_transform(image)
        image = tfm.apply_image(image)
        geometric.append(tfm)
    if ssd is not None:
        image = ssd.apply_image(image)
    out = [m.astype(np.uint8) for m in masks]
    for tfm in geometric:
        out = [tfm.apply_segmentation(m) for m in out]
    out = [m.astype(bool) for m in out if m.any()]
    out.sort(key=lambda m: -int(m.sum()))
    return image, np.stack(out)


@pytest.mark.parametrize("image_format,random_flip", [("RGB", "none"), ("BGR", "none"), ("BGR", "horizontal")])
def test_ssd_colour_runs_on_the_crop_in_the_input_format(tmp_path, image_format, random_flip):
    """The release's order (resize, crop, SSD colour, flip), also without a flip; the SSD transform told the
    channel order (its saturation and hue go through cv2's BGR->HSV)."""
    rgb, masks = _image(), _masks()
    sample = _sample(tmp_path)
    mapper = build_mapper(_cfg(**{"INPUT.FORMAT": image_format, "INPUT.RANDOM_FLIP": random_flip}), is_train=True)
    source = rgb[:, :, ::-1].copy() if image_format == "BGR" else rgb
    for seed in range(4):
        augs = [T.ResizeShortestEdge((60,), 4096, "choice"), T.RandomCrop("absolute", (40, 40))]
        if random_flip != "none":
            augs.append(T.RandomFlip(horizontal=True, vertical=False))
        _seed(seed)
        expected_image, expected_masks = _by_hand(source, masks, augs, image_format)
        _seed(seed)
        out = mapper(dict(sample))
        assert out["image"].shape == (3, 40, 40)
        np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), expected_image, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(out["instances"].gt_masks.tensor.numpy(), expected_masks)
        assert out["image_strong"] is out["image"]  # STRONG_AUG off: one view


@pytest.mark.parametrize("crop_type,crop_size", [("relative", (0.5, 0.25)), ("relative_range", (0.5, 0.25)),
                                                 ("absolute_range", (20, 30))])
def test_crop_types_are_passed_to_detectron2(tmp_path, crop_type, crop_size):
    """INPUT.CROP.TYPE and SIZE as D2's RandomCrop reads them, on the 60×80 resized image: relative (0.5,
    0.25) is 30×20; relative_range draws in [30, 60]×[20, 80]; absolute_range in [20, 30]×[20, 30]."""
    cfg = _cfg(**{"INPUT.CROP.TYPE": crop_type, "INPUT.CROP.SIZE": crop_size, "INPUT.COLOR_AUG_SSD": False})
    mapper = build_mapper(cfg, is_train=True)
    sample = _sample(tmp_path)
    shapes = set()
    for seed in range(8):
        _seed(seed)
        resize = T.ResizeShortestEdge((60,), 4096, "choice").get_transform(_image())
        assert (resize.new_h, resize.new_w) == (60, 80)
        resized = resize.apply_image(_image())
        crop = T.RandomCrop(crop_type, crop_size).get_transform(resized)
        _seed(seed)
        out = mapper(dict(sample))
        got = out["image"].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(got, crop.apply_image(resized))
        h, w = got.shape[:2]
        shapes.add((h, w))
        if crop_type == "relative":
            assert (h, w) == (30, 20)
        elif crop_type == "relative_range":
            assert 30 <= h <= 60 and 20 <= w <= 80
        else:
            assert 20 <= h <= 30 and 20 <= w <= 30
        assert tuple(out["instances"].gt_masks.tensor.shape[1:]) == (h, w) == out["instances"].image_size
    assert len(shapes) == 1 if crop_type == "relative" else len(shapes) > 1


def test_test_time_mapper_resizes_with_the_test_sizes_and_no_colour(tmp_path):
    """is_train=False: ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST) only (no SSD colour even when
    COLOR_AUG_SSD is on). 48×64 to short side 60 is 60×80; the long side capped at 70: scale 70/80, 52.5×70,
    rounded half up to 53×70."""
    cfg = _cfg(**{"INPUT.MIN_SIZE_TEST": 60, "INPUT.MAX_SIZE_TEST": 70, "INPUT.MAX_SIZE_TRAIN": 4096})
    mapper = build_mapper(cfg, is_train=False)
    sample = _sample(tmp_path)
    resize = T.ResizeTransform(H, W, 53, 70, Image.BILINEAR)
    for seed in range(3):
        _seed(seed)
        out = mapper(dict(sample))
        np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), resize.apply_image(_image()))
        expected = np.stack([resize.apply_segmentation(m.astype(np.uint8)).astype(bool) for m in _masks()])
        np.testing.assert_array_equal(out["instances"].gt_masks.tensor.numpy(), expected)


def test_max_masks_of_the_config_keeps_the_largest(tmp_path):
    """MODEL.PIXELCLIP.MAX_MASKS = 2 reaches the mapper: the two largest masks (areas 1200 and 600); with
    INPUT.CROP.ENABLED False the whole (here unresized) image is kept, though CROP.SIZE is 40×40."""
    cfg = _cfg(**{"MODEL.PIXELCLIP.MAX_MASKS": 2, "INPUT.CROP.ENABLED": False, "INPUT.MIN_SIZE_TRAIN": (H,),
                  "INPUT.COLOR_AUG_SSD": False})
    out = build_mapper(cfg, is_train=True)(_sample(tmp_path))
    np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), _image())
    np.testing.assert_array_equal(out["instances"].gt_masks.tensor.numpy(), _masks()[:2])
    cfg.MODEL.PIXELCLIP.MAX_MASKS = 0
    assert len(build_mapper(cfg, is_train=True)(_sample(tmp_path))["instances"]) == 4


class _CountingCrop(T.Augmentation):
    """A fixed 20×20 crop at the origin, counting how often it is drawn."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def get_transform(self, image):
        self.calls += 1
        return T.CropTransform(0, 0, 20, 20)


def test_dino_mode_draws_one_crop_and_counts_nothing(tmp_path):
    """Without mask files (masks made online) there is nothing a crop could lose: one crop is drawn, the
    sample has 0 masks, and it is not counted as 'no mask left after cropping'."""
    sample = _sample(tmp_path)
    sample.pop("mask_file")
    crop = _CountingCrop()
    mapper = PixelCLIPUnlabeledMapper(augmentations=[crop], masks_from_files=False, crop_retries=5)
    out = mapper(sample)
    assert crop.calls == 1 and out["instances"].gt_masks.tensor.shape == (0, 20, 20)
    assert mapper.num_empty == 0 and sum(mapper.skip_counter.totals().values()) == 0


def test_crop_retries_below_one_still_draws_one_crop(tmp_path):
    masks = np.zeros((1, H, W), dtype=bool)
    masks[0, 30:40, 40:50] = True  # outside the 20×20 crop
    crop = _CountingCrop()
    mapper = PixelCLIPUnlabeledMapper(augmentations=[crop], crop_retries=0)
    out = mapper(_sample(tmp_path, masks=masks))
    assert crop.calls == 1 and out["instances"].gt_masks.tensor.shape == (0, 20, 20)
    assert mapper.skip_counter.totals()["no mask left after cropping"] == 1
