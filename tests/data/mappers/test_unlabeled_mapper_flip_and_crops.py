"""The training mapper's geometry: INPUT.RANDOM_FLIP flips the axis it names (image and masks together),
and a crop that leaves no mask is drawn again, up to ``crop_retries`` crops in all.

The mapper is built from the config's own augmentations (``from_config``) with the strong view and
any cutout left out, so only the geometric path is under test."""
import logging
import random

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from PIL import Image

from pixelclip.data.mappers import PixelCLIPUnlabeledMapper
from pixelclip.data.mask_io import encode_masks, write_mask_file
from tests.conftest import make_tiny_cfg

H, W = 12, 16


def _seed(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _sample(tmp_path, image, masks, name="im"):
    Image.fromarray(image).save(tmp_path / f"{name}.png")
    write_mask_file(tmp_path / f"{name}.json", {"file_name": f"{name}.png", "height": image.shape[0],
                                                "width": image.shape[1]}, encode_masks(masks))
    return {"file_name": str(tmp_path / f"{name}.png"), "mask_file": str(tmp_path / f"{name}.json"), "image_id": name}


def _asymmetric():
    """A random image (no flip of it equals another) and three masks of different areas."""
    image = np.random.default_rng(3).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 1:9, 2:6] = True  # 32 px, top left
    masks[1, 7:11, 9:15] = True  # 24 px, bottom right
    masks[2, 0, 13:16] = True  # 3 px, top right corner
    return image, masks


def _geometry_only_mapper(random_flip: str) -> PixelCLIPUnlabeledMapper:
    """The configured augmentations (resize to the image's own short side, no crop, the flip) and no
    colour augmentation, strong view or cutout."""
    cfg = make_tiny_cfg(**{"INPUT.MIN_SIZE_TRAIN": (H,), "INPUT.MAX_SIZE_TRAIN": 4096,
                           "INPUT.CROP.ENABLED": False, "INPUT.RANDOM_FLIP": random_flip,
                           "INPUT.COLOR_AUG_SSD": False, "INPUT.STRONG_AUG": False})
    kwargs = PixelCLIPUnlabeledMapper.from_config(cfg, is_train=True)
    kwargs.pop("cutout", None)  # the __init__ default: no cutout
    kwargs.update(strong_aug=None, color_aug_ssd=False, max_masks=0)
    return PixelCLIPUnlabeledMapper(**kwargs)


@pytest.mark.parametrize("random_flip,allowed", [
    ("horizontal", {"none", "horizontal"}), ("vertical", {"none", "vertical"}), ("none", {"none"})])
def test_random_flip_flips_the_named_axis_for_image_and_masks(tmp_path, random_flip, allowed):
    image, masks = _asymmetric()
    sample = _sample(tmp_path, image, masks)
    flips = {"none": lambda a: a, "horizontal": lambda a: a[..., ::-1], "vertical": lambda a: a[..., ::-1, :]}
    mapper = _geometry_only_mapper(random_flip)
    seen = []
    for seed in range(12):  # D2's RandomFlip draws with np.random, p = 0.5
        _seed(seed)
        out = mapper(sample)
        got = out["image"].permute(1, 2, 0).numpy()
        which = [k for k, f in flips.items() if np.array_equal(got, f(image.transpose(2, 0, 1)).transpose(1, 2, 0))]
        assert len(which) == 1, f"seed {seed}: the image is no flip of the input"
        seen.append(which[0])
        # the masks moved with the image (same order: a flip keeps the areas)
        np.testing.assert_array_equal(out["instances"].gt_masks.tensor.numpy(), flips[which[0]](masks))
    assert set(seen) == allowed, f"RANDOM_FLIP={random_flip!r}: drew {seen}"


class _ScriptedCrops(T.Augmentation):
    """Crops from a list, one per call (the last one repeated), counting the calls."""

    def __init__(self, boxes):
        super().__init__()
        self.boxes = list(boxes)
        self.calls = 0

    def get_transform(self, image):
        x0, y0, w, h = self.boxes[min(self.calls, len(self.boxes) - 1)]
        self.calls += 1
        return T.CropTransform(x0, y0, w, h)


EMPTY_A, EMPTY_B, HIT = (0, 0, 4, 4), (12, 0, 4, 4), (8, 6, 5, 5)


def _crop_sample(tmp_path):
    image, _ = _asymmetric()
    masks = np.zeros((1, H, W), dtype=bool)
    masks[0, 8:11, 10:12] = True  # inside HIT only
    return image, masks, _sample(tmp_path, image, masks, "crop")


def _crop_of(array, box):
    x0, y0, w, h = box
    return array[..., y0:y0 + h, x0:x0 + w]


@pytest.mark.parametrize("boxes,retries,used,calls", [
    ([HIT], 5, HIT, 1),  # the first crop has a mask: no second crop is drawn
    ([EMPTY_A, HIT], 5, HIT, 2),
    ([EMPTY_A, EMPTY_B, HIT], 3, HIT, 3),  # the third of 3 crops has the mask
    ([EMPTY_A, EMPTY_B, EMPTY_A, HIT], 3, EMPTY_A, 3),  # 3 crops in all, none with a mask
])
def test_empty_crops_are_drawn_again_up_to_crop_retries(tmp_path, caplog, boxes, retries, used, calls):
    image, masks, sample = _crop_sample(tmp_path)
    crops = _ScriptedCrops(boxes)
    mapper = PixelCLIPUnlabeledMapper(augmentations=[crops], crop_retries=retries)
    with caplog.at_level(logging.WARNING):
        out = mapper(sample)
    assert crops.calls == calls
    np.testing.assert_array_equal(out["image"].numpy(), _crop_of(image.transpose(2, 0, 1), used))
    expected = _crop_of(masks, used)
    expected = expected[expected.reshape(len(expected), -1).any(1)]
    np.testing.assert_array_equal(out["instances"].gt_masks.tensor.numpy(), expected)
    assert (len(expected) == 0) == (f"no mask left in {retries} crops" in caplog.text)


def test_the_configured_mapper_redraws_empty_crops(tmp_path):
    """The mapper as the config builds it keeps redrawing (the default crop_retries, 5 crops)."""
    image, masks, sample = _crop_sample(tmp_path)
    mapper = _geometry_only_mapper("none")
    crops = _ScriptedCrops([EMPTY_A, EMPTY_B, EMPTY_A, EMPTY_B, HIT])
    mapper.augmentations = T.AugmentationList([crops])
    out = mapper(sample)
    assert crops.calls == 5 and len(out["instances"].gt_masks) == 1
