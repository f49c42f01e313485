"""The training mapper: masks stay aligned with the image, views differ only in colour,
corrupt samples are skipped (and D2 draws another), small images work."""
import json
import logging
import random

import numpy as np
import pytest
import torch
from detectron2.data import DatasetFromList, MapDataset
from detectron2.data import transforms as T
from detectron2.structures import BitMasks
from PIL import Image

from pixelclip.data import build_mapper
from pixelclip.data.mappers import PixelCLIPUnlabeledMapper
from pixelclip.data.mappers.mask_transforms import transform_rle_masks
from pixelclip.data.mappers.strong_color import StrongColorAugmentation
from pixelclip.data.mask_io import MaskFileError, encode_masks, read_mask_file, write_mask_file
from pixelclip.data.skips import SkipAwareMapDataset
from pixelclip.errors import TrainingDataError
from tests.conftest import make_tiny_cfg

H, W = 96, 128
RED = (230, 20, 20)


def _shape_masks() -> np.ndarray:
    """An asymmetric L shape (mask 0), a bar (mask 1) and the background (mask 2)."""
    m = np.zeros((3, H, W), dtype=bool)
    m[0, 10:70, 20:40] = True
    m[0, 55:70, 40:90] = True
    m[1, 80:90, 5:120] = True
    m[2] = ~(m[0] | m[1])
    return m


def _write_sample(tmp_path, name="img", masks=None, image=None, suffix=".png"):
    masks = _shape_masks() if masks is None else masks
    if image is None:
        image = np.zeros((H, W, 3), dtype=np.uint8)
        for mask, colour in zip(masks[:2], (RED, (20, 20, 230))):
            image[mask] = colour
    img_path = tmp_path / f"{name}{suffix}"
    Image.fromarray(image).save(img_path)
    mask_path = tmp_path / f"{name}.json"
    write_mask_file(mask_path, {"file_name": img_path.name, "height": image.shape[0], "width": image.shape[1]},
                    encode_masks(masks))
    return {"file_name": str(img_path), "mask_file": str(mask_path), "image_id": name}


def _cfg(**overrides):
    base = {"INPUT.MIN_SIZE_TRAIN": (128,), "INPUT.CROP.SIZE": (96, 96)}
    base.update(overrides)
    return make_tiny_cfg(**base)


def _seed(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def test_registered_mapper_returns_the_documented_sample(tmp_path):
    mapper = build_mapper(_cfg(), is_train=True)
    assert isinstance(mapper, PixelCLIPUnlabeledMapper)
    _seed(0)
    out = mapper(_write_sample(tmp_path))
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, 96, 96)
    assert out["image_strong"].dtype == torch.uint8 and out["image_strong"].shape == (3, 96, 96)
    masks = out["instances"].gt_masks
    assert isinstance(masks, BitMasks) and masks.tensor.dtype == torch.bool
    assert masks.tensor.shape[1:] == (96, 96) and 1 <= len(masks) <= 3
    assert out["instances"].image_size == (96, 96)
    assert (out["height"], out["width"]) == (H, W) and out["file_name"].endswith("img.png")
    areas = masks.tensor.flatten(1).sum(1)
    assert torch.all(areas[:-1] >= areas[1:]) and torch.all(areas > 0)  # largest first, none empty


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_masks_follow_the_image_through_resize_crop_and_flip(tmp_path, flip_prob):
    sample = _write_sample(tmp_path)
    mapper = PixelCLIPUnlabeledMapper(
        is_train=True,
        augmentations=[T.ResizeShortestEdge((128,), 4096, "choice"), T.RandomCrop("absolute", (80, 80)),
                       T.RandomFlip(prob=flip_prob)],
        max_masks=10,
    )
    for seed in range(4):
        _seed(seed)
        out = mapper(sample)
        red = out["image"][0].numpy().astype(int)
        masks = out["instances"].gt_masks.tensor.numpy()
        # Find the L-shape mask (reddest mask) and check it against the red pixels of the image.
        redness = [red[m].mean() if m.any() else 0 for m in masks]
        shape = masks[int(np.argmax(redness))]
        # Bilinear image vs nearest masks: a mask pixel's source pixel weighs >= 1/2 in the image.
        assert red[shape].min() >= 110, "mask pixels where the image is not red"
        assert red[~shape].max() <= 140, "red image pixels outside the mask"
        assert (red >= 200).sum() > 0 and np.array_equal(red >= 200, (red >= 200) & shape)


def test_flip_really_mirrors(tmp_path):
    sample = _write_sample(tmp_path)
    kwargs = {"augmentations": [T.ResizeShortestEdge((96,), 4096, "choice")], "max_masks": 10}
    plain = PixelCLIPUnlabeledMapper(**kwargs)(sample)
    kwargs["augmentations"] = [T.ResizeShortestEdge((96,), 4096, "choice"), T.RandomFlip(prob=1.0)]
    flipped = PixelCLIPUnlabeledMapper(**kwargs)(sample)
    assert torch.equal(plain["image"].flip(-1), flipped["image"])
    assert torch.equal(plain["instances"].gt_masks.tensor.flip(-1), flipped["instances"].gt_masks.tensor)


def test_fast_mask_path_equals_detectron2_apply_segmentation():
    masks = _shape_masks()
    anns = encode_masks(masks)
    for tfms in (
        [T.ResizeTransform(H, W, 150, 200), T.CropTransform(13, 7, 120, 90), T.HFlipTransform(120)],
        [T.ResizeTransform(H, W, 50, 67), T.VFlipTransform(50)],
        [T.CropTransform(100, 0, 28, 30)],  # the bar and background only
    ):
        tfm = T.TransformList(tfms)
        got, kept = transform_rle_masks(anns, tfm, (H, W))
        expected = [tfm.apply_segmentation(m.astype(np.uint8)).astype(bool) for m in masks]
        expected_kept = [i for i, m in enumerate(expected) if m.any()]
        assert kept.tolist() == expected_kept
        np.testing.assert_array_equal(got, np.stack([expected[i] for i in expected_kept]))


def test_weak_and_strong_views_differ_only_in_colour(tmp_path):
    image = np.zeros((H, W, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    image[:] = rng.integers(0, 255, size=(H // 8, W // 8, 3)).repeat(8, 0).repeat(8, 1)  # colour blocks
    sample = _write_sample(tmp_path, image=image)
    mapper = PixelCLIPUnlabeledMapper(
        augmentations=[T.ResizeShortestEdge((128,), 4096, "choice"), T.RandomCrop("absolute", (96, 96)),
                       T.RandomFlip()],
        color_aug_ssd=True,
        strong_aug=StrongColorAugmentation(jitter_prob=1.0, grayscale_prob=0.0, blur_prob=0.0),
    )
    for seed in range(3):
        _seed(seed)
        out = mapper(sample)
        weak = out["image"].permute(1, 2, 0).reshape(-1, 3).numpy()
        strong = out["image_strong"].permute(1, 2, 0).reshape(-1, 3).numpy()
        assert not np.array_equal(weak, strong)
        # Same geometry: the strong colour of a pixel is a function of its weak colour.
        _, inverse = np.unique(weak, axis=0, return_inverse=True)
        for group in range(inverse.max() + 1):
            colours = strong[inverse.ravel() == group]
            assert (colours.max(0).astype(int) - colours.min(0)).max() <= 1
    # The release's full recipe (grayscale and blur included) keeps the size and the masks.
    mapper.strong_aug = StrongColorAugmentation()
    out = mapper(sample)
    assert out["image_strong"].shape == out["image"].shape


def test_strong_aug_off_gives_the_same_view(tmp_path):
    mapper = build_mapper(_cfg(**{"INPUT.STRONG_AUG": False}), is_train=True)
    out = mapper(_write_sample(tmp_path))
    assert torch.equal(out["image"], out["image_strong"])


def test_bgr_format_reads_bgr(tmp_path):
    sample = _write_sample(tmp_path)
    kwargs = {"augmentations": [T.ResizeShortestEdge((96,), 4096, "choice")]}
    rgb = PixelCLIPUnlabeledMapper(image_format="RGB", **kwargs)(sample)["image"]
    bgr = PixelCLIPUnlabeledMapper(image_format="BGR", strong_aug=StrongColorAugmentation("BGR"), **kwargs)(sample)
    assert torch.equal(rgb.flip(0), bgr["image"]) and bgr["image_strong"].shape == bgr["image"].shape


def test_max_masks_keeps_the_largest(tmp_path):
    masks = np.zeros((6, H, W), dtype=bool)
    for i in range(6):
        masks[i, : 10 + 10 * i, :20] = True  # areas grow with i
    mapper = PixelCLIPUnlabeledMapper(augmentations=[T.ResizeShortestEdge((96,), 4096, "choice")], max_masks=3)
    out = mapper(_write_sample(tmp_path, masks=masks))
    kept = out["instances"].gt_masks.tensor
    assert len(kept) == 3
    np.testing.assert_array_equal(kept.numpy(), masks[[5, 4, 3]])
    # 0 (the default, as the release) keeps every mask, largest first
    mapper = PixelCLIPUnlabeledMapper(augmentations=[T.ResizeShortestEdge((96,), 4096, "choice")])
    kept = mapper(_write_sample(tmp_path, masks=masks))["instances"].gt_masks.tensor
    np.testing.assert_array_equal(kept.numpy(), masks[::-1])


def test_masks_emptied_by_the_crop_are_dropped_and_empty_crops_retried(tmp_path, caplog):
    masks = np.zeros((2, H, W), dtype=bool)
    masks[0, :4, :4] = True  # a corner speck
    masks[1, 40:60, 60:70] = True
    mapper = PixelCLIPUnlabeledMapper(augmentations=[T.RandomCrop("absolute", (30, 30))], crop_retries=50)
    _seed(0)
    out = mapper(_write_sample(tmp_path, masks=masks))
    assert 1 <= len(out["instances"].gt_masks) <= 2 and out["instances"].gt_masks.tensor.flatten(1).any(1).all()

    speck = masks[:1]
    mapper = PixelCLIPUnlabeledMapper(augmentations=[T.CropTransform(50, 50, 30, 30)], crop_retries=3)
    with caplog.at_level(logging.WARNING):
        out = mapper(_write_sample(tmp_path, name="speck", masks=speck))
    assert out is not None and out["instances"].gt_masks.tensor.shape == (0, 30, 30)
    assert "no mask left in 3 crops" in caplog.text and mapper.num_empty == 1


def test_dino_mode_needs_no_mask_file(tmp_path):
    sample = _write_sample(tmp_path)
    sample.pop("mask_file")
    mapper = build_mapper(_cfg(**{"MODEL.DINO.ENABLED": True}), is_train=True)
    out = mapper(sample)
    assert out["instances"].gt_masks.tensor.shape == (0, 96, 96)
    with pytest.raises(ValueError, match="no 'mask_file'"):
        build_mapper(_cfg(), is_train=True)(sample)


def _corrupt_samples(tmp_path):
    good = _write_sample(tmp_path, name="good")
    truncated = _write_sample(tmp_path, name="trunc", suffix=".jpg")
    data = open(truncated["file_name"], "rb").read()
    open(truncated["file_name"], "wb").write(data[: len(data) // 2])
    bad_json = _write_sample(tmp_path, name="badjson")
    open(bad_json["mask_file"], "w").write('{"image": {"file_name"')
    wrong_size = _write_sample(tmp_path, name="wrongsize")
    wrong_size["mask_file"] = _write_sample(tmp_path, name="small", image=np.zeros((48, 64, 3), np.uint8),
                                            masks=np.ones((1, 48, 64), bool))["mask_file"]
    empty = _write_sample(tmp_path, name="empty", masks=np.zeros((0, H, W), bool))
    return good, {
        "corrupt or unreadable image": (truncated, "file_name"),
        "malformed JSON": (bad_json, "mask_file"),
        "bad mask file, image: size [48, 64] (H, W) differs from the image file's size [96, 128]":
            (wrong_size, "mask_file"),
        "bad mask file, annotations: empty mask list": (empty, "mask_file"),
    }


def test_corrupt_samples_are_logged_counted_and_skipped(tmp_path, caplog):
    good, bad = _corrupt_samples(tmp_path)
    mapper = build_mapper(_cfg(), is_train=True)
    for i, (message, (sample, key)) in enumerate(bad.items(), start=1):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert mapper(sample) is None
        assert f"Skipping {sample[key]}: " in caplog.text and message in caplog.text
        assert f"{i} corrupt samples skipped" in caplog.text and mapper.num_corrupt == i
    assert mapper(good) is not None


def test_detectron2_map_dataset_draws_another_sample(tmp_path):
    good, bad = _corrupt_samples(tmp_path)
    samples = [bad["malformed JSON"][0], good, bad["bad mask file, annotations: empty mask list"][0]]
    dataset = MapDataset(DatasetFromList(samples, copy=False),
                         build_mapper(_cfg(), is_train=True))
    for idx in (0, 2):
        out = dataset[idx]
        assert out["file_name"] == good["file_name"] and len(out["instances"].gt_masks) > 0


def test_inference_mode_resizes_only(tmp_path):
    mapper = build_mapper(_cfg(**{"INPUT.MIN_SIZE_TEST": 48}), is_train=False)
    out = mapper(_write_sample(tmp_path))
    assert out["image"].shape == (3, 48, 64) and torch.equal(out["image"], out["image_strong"])
    assert len(out["instances"].gt_masks) == 3


def test_detectron2_train_loader_yields_batches_from_a_registered_folder(tmp_path):
    from detectron2.data import build_detection_train_loader

    from pixelclip.data.datasets.unlabeled_folder import register_unlabeled_folder

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        sample = _write_sample(tmp_path / "images", name=f"im{i}")
        (tmp_path / "images" / f"im{i}.json").rename(tmp_path / "masks" / f"im{i}.json")
    register_unlabeled_folder("test_mapper_loader_folder", str(tmp_path / "images"), str(tmp_path / "masks"))
    cfg = _cfg(**{"DATASETS.TRAIN": ("test_mapper_loader_folder",), "SOLVER.IMS_PER_BATCH": 2,
                  "DATALOADER.NUM_WORKERS": 0})
    loader = build_detection_train_loader(cfg, mapper=build_mapper(cfg, is_train=True))
    batch = next(iter(loader))
    assert len(batch) == 2 and sample["image_id"] == "im2"
    assert all(x["image"].shape == x["image_strong"].shape == (3, 96, 96) for x in batch)
    assert all(len(x["instances"].gt_masks) > 0 for x in batch)


def test_a_malformed_rle_is_a_bad_mask_file_not_a_silently_missing_mask(tmp_path, caplog):
    """pycocotools gives these counts an empty box (or decodes them without complaint), so the mask
    used to vanish from training; the schema check now names the file and the field."""
    sample = _write_sample(tmp_path, name="rle")
    record = json.loads(open(sample["mask_file"]).read())
    record["annotations"][1]["segmentation"]["counts"] = "PPYo1"  # parses, but covers 2073600 pixels of 96×128
    open(sample["mask_file"], "w").write(json.dumps(record))
    with pytest.raises(MaskFileError) as err:
        read_mask_file(sample["mask_file"])
    assert str(err.value).startswith(f"{sample['mask_file']}: annotations[1].segmentation.counts: malformed COCO "
                                     "RLE: its runs cover 2073600 pixels, its size 96×128 has 12288 — ")
    mapper = build_mapper(_cfg(), is_train=True)
    with caplog.at_level(logging.WARNING):
        assert mapper(sample) is None
    assert f"Skipping {sample['mask_file']}: bad mask file, annotations[1].segmentation.counts" in caplog.text
    assert mapper.skip_counter.totals()["bad mask file"] == 1


def test_a_training_set_where_every_sample_is_bad_stops_with_the_counts(tmp_path):
    good, bad = _corrupt_samples(tmp_path)
    samples = [sample for sample, _ in bad.values()]
    mapper = build_mapper(_cfg(), is_train=True)
    dataset = SkipAwareMapDataset(DatasetFromList(samples, copy=False), mapper)
    with pytest.raises(TrainingDataError) as err:
        dataset[0]
    message = str(err.value)
    assert message.startswith("no usable training sample: all 4 samples tried (of 4) were skipped: corrupt image 1 "
                              f"(e.g. {bad['corrupt or unreadable image'][0]['file_name']}), bad mask file 3 (e.g. ")
    assert "no mask left after cropping 0" in message and "\n" not in message
    ok = SkipAwareMapDataset(DatasetFromList(samples + [good], copy=False), build_mapper(_cfg(), is_train=True))
    assert ok[0]["file_name"] == good["file_name"]  # with one good sample, D2's behaviour: another is drawn
