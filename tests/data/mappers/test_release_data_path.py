"""The training data path against the authors' release: its own SA-1B mapper's outputs on generated
SA-1B-style inputs (tests/fixtures/release_data_path.pt, see make_release_data_path.py), the recipe's
resize cap checked by hand, and the cutout's effect on the strong view and the masks."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T

from pixelclip import get_pixelclip_cfg
from pixelclip.data.mappers import PixelCLIPUnlabeledMapper
from pixelclip.data.mappers.cutout import apply_cutout, cutout_box
from pixelclip.data.mappers.strong_color import StrongColorAugmentation
from pixelclip.data.mask_io import encode_masks, write_mask_file

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "release_data_path.pt"


@pytest.fixture(scope="module")
def release():
    return torch.load(FIXTURE, map_location="cpu", weights_only=False)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _write_inputs(release, folder: Path):
    from PIL import Image

    dicts = {}
    for name, sample in release["inputs"].items():
        image = sample["image"].numpy()
        Image.fromarray(image).save(folder / f"{name}.png")
        (folder / f"{name}.json").write_text(json.dumps({
            "image": {"image_id": name, "file_name": f"{name}.png", "height": image.shape[0], "width": image.shape[1]},
            "annotations": sample["annotations"]}))
        dicts[name] = {"file_name": str(folder / f"{name}.png"), "mask_file": str(folder / f"{name}.json"),
                       "image_id": name}
    return dicts


def test_mapper_makes_the_release_views_and_masks_bit_for_bit(release, tmp_path):
    """Resize (with the long-side cap), crop, SSD colour, flip, strong view and cutout: the same seeds give
    the release's weak view, strong view and masks exactly."""
    recipe = release["meta"]["recipe"]
    cfg = get_pixelclip_cfg(opts=[
        "INPUT.MIN_SIZE_TRAIN", str(recipe["MIN_SIZE_TRAIN"]), "INPUT.MAX_SIZE_TRAIN", str(recipe["MAX_SIZE_TRAIN"]),
        "INPUT.CROP.SIZE", str(recipe["CROP_SIZE"])])
    assert cfg.INPUT.STRONG_AUG and cfg.INPUT.STRONG_CUTOUT and cfg.INPUT.COLOR_AUG_SSD  # the recipe's
    mapper = PixelCLIPUnlabeledMapper(cfg, is_train=True)
    dicts = _write_inputs(release, tmp_path)
    dropped_by_cutout = 0
    for case in release["mapper"]:
        _seed(case["seed"])
        out = mapper(dict(dicts[case["image"]]))
        where = f"{case['image']} seed {case['seed']}"
        assert torch.equal(out["image"], case["weak"]), where
        assert torch.equal(out["image_strong"], case["strong"]), where
        masks = out["instances"].gt_masks.tensor
        assert masks.shape == case["masks"].shape and torch.equal(masks, case["masks"]), where
        assert (out["image_strong"] == 0).all(0).any(), where  # a black box is cut in every strong view
        assert not torch.equal(out["image"], out["image_strong"])
        _seed(case["seed"])
        no_cut = PixelCLIPUnlabeledMapper(**{**PixelCLIPUnlabeledMapper.from_config(cfg, True), "cutout": False})
        dropped_by_cutout += len(no_cut(dict(dicts[case["image"]]))["instances"]) - len(masks)
    assert dropped_by_cutout > 0  # some case has a mask the cutout empties, and the release drops it too


@pytest.mark.parametrize("hw, resized", [
    ((750, 1125), (889, 1333)),   # 3:2, the release's halved SA-1B: 1024 x 1536 capped at 1333 (x 0.8678)
    ((750, 1000), (1000, 1333)),  # 4:3: 1024 x 1365.3 capped at 1333 (x 0.9763): 999.7 -> 1000
    ((1000, 750), (1333, 1000)),  # portrait
    ((1024, 1024), (1024, 1024)),  # no cap reached
])
def test_recipe_resize_caps_the_long_side_at_1333_then_crops_640(hw, resized):
    """Hand-computed: short side to 1024, then the long side capped at Detectron2's 1333 (the release keeps
    D2's default), rounded half up; then a 640×640 crop."""
    cfg = get_pixelclip_cfg()
    assert cfg.INPUT.MAX_SIZE_TRAIN == 1333 and tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (1024,)
    assert tuple(cfg.INPUT.CROP.SIZE) == (640, 640)
    mapper = PixelCLIPUnlabeledMapper(cfg, is_train=True)
    aug = T.AugInput(np.zeros(hw + (3,), dtype=np.uint8))
    transforms = mapper.augmentations(aug)
    resize = transforms.transforms[0]
    assert isinstance(resize, T.ResizeTransform) and (resize.new_h, resize.new_w) == resized
    assert aug.image.shape[:2] == (640, 640)


def test_cutout_box_sizes_and_placement():
    """Sides int(0.1-0.5 × the view's), drawn first (the height-based one horizontal, as the release)."""
    sides, touches = set(), {"top": 0, "left": 0, "bottom": 0, "right": 0}
    for seed in range(400):
        np.random.seed(seed)
        u1, u2 = np.random.uniform(0.1, 0.5), np.random.uniform(0.1, 0.5)
        np.random.seed(seed)
        y0, y1, x0, x1 = cutout_box(80, 120)
        side_x, side_y = int(80 * u1), int(120 * u2)
        # inside the view, except that the release's centre range lets a box pass the far border by one pixel,
        # which is clipped
        assert x1 - x0 == side_x or (x1 - x0 == side_x - 1 and x1 == 120)
        assert y1 - y0 == side_y or (y1 - y0 == side_y - 1 and y1 == 80)
        assert 0 <= y0 < y1 <= 80 and 0 <= x0 < x1 <= 120
        sides.add((x1 - x0, y1 - y0))
        touches["top"] += y0 == 0
        touches["left"] += x0 == 0
        touches["bottom"] += y1 == 80
        touches["right"] += x1 == 120
    assert len(sides) > 100 and all(touches.values())  # every border is reached


def test_cutout_changes_only_the_strong_view_and_drops_the_masks_it_empties(tmp_path):
    h, w = 64, 96
    np.random.seed(7)
    y0, y1, x0, x1 = box = cutout_box(h, w)
    masks = np.zeros((4, h, w), dtype=bool)
    masks[0, y0:y1, x0:x1] = True  # wholly inside the box: dropped
    masks[1] = True  # everything: keeps what lies outside the box
    masks[2, :, :2] = masks[2, :2, :] = True  # a corner frame, partly cut at most
    masks[3, y0, x0] = True  # one pixel inside: dropped
    image = (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)
    (tmp_path / "a.png").write_bytes(b"")
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "a.png")
    write_mask_file(tmp_path / "a.json", {"file_name": "a.png", "height": h, "width": w}, encode_masks(masks))
    identity = StrongColorAugmentation("RGB", jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
    mapper = PixelCLIPUnlabeledMapper(augmentations=[], strong_aug=identity, cutout=True)
    np.random.seed(7)  # no other numpy draw before the box: the mapper cuts the same box
    out = mapper({"file_name": str(tmp_path / "a.png"), "mask_file": str(tmp_path / "a.json"), "image_id": 0})
    weak, strong = out["image"].permute(1, 2, 0).numpy(), out["image_strong"].permute(1, 2, 0).numpy()
    assert np.array_equal(weak, image)  # the teacher's view is never cut
    inside = np.zeros((h, w), dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert (strong[inside] == 0).all() and np.array_equal(strong[~inside], image[~inside])
    kept = out["instances"].gt_masks.tensor.numpy()
    expected = [m & ~inside for m in masks[[1, 2]]]  # largest first: everything, then the frame
    assert len(kept) == 2 and all(np.array_equal(k, e) for k, e in zip(kept, expected))
    assert apply_cutout(image, masks[:0], box)[1].shape == (0, h, w)


def test_cutout_is_off_without_the_strong_view_and_by_the_switch():
    cfg = get_pixelclip_cfg(opts=["INPUT.STRONG_CUTOUT", "False"])
    assert not PixelCLIPUnlabeledMapper(cfg, is_train=True).cutout
    cfg = get_pixelclip_cfg(opts=["INPUT.STRONG_AUG", "False"])
    assert not PixelCLIPUnlabeledMapper(cfg, is_train=True).cutout
    assert PixelCLIPUnlabeledMapper(get_pixelclip_cfg(), is_train=True).cutout
