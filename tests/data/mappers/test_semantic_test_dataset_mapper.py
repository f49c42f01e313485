"""pixelclip/data/mappers/semantic_test_dataset_mapper.py: the registered test mapper, built by
``build_test_mapper`` where the config names no other."""
import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import make_tiny_cfg

from pixelclip.data import MAPPER_REGISTRY, build_test_mapper
from pixelclip.data.mappers import SemanticTestMapper


def test_the_default_test_mapper_resizes_the_short_side_and_keeps_the_original_size(tmp_path):
    pixels = np.arange(60 * 90 * 3, dtype=np.uint8).reshape(60, 90, 3)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    cfg = make_tiny_cfg(**{"INPUT.MIN_SIZE_TEST": 30})
    mapper = build_test_mapper(cfg, "any_dataset")
    assert type(mapper) is SemanticTestMapper and MAPPER_REGISTRY.get("pixelclip_semantic_test") is SemanticTestMapper
    out = mapper({"file_name": str(tmp_path / "a.png"), "sem_seg_file_name": "labels/a.png"})
    assert out["image"].shape == (3, 30, 45) and out["image"].dtype == torch.uint8
    assert (out["height"], out["width"]) == (60, 90) and "sem_seg_file_name" not in out  # the evaluator reads it


def test_a_named_test_mapper_is_built_for_the_one_dataset(tmp_path):
    seen = {}

    @MAPPER_REGISTRY.register()
    class _RecordingTestMapper:
        def __init__(self, cfg, is_train):
            seen.update(datasets=tuple(cfg.DATASETS.TEST), is_train=is_train)

    cfg = make_tiny_cfg()
    cfg.INPUT.TEST_MAPPER_NAME = "_RecordingTestMapper"  # a key projects add (e.g. mask_classification)
    cfg.DATASETS.TEST = ("first", "second")
    assert isinstance(build_test_mapper(cfg, "second"), _RecordingTestMapper)
    assert seen == {"datasets": ("second",), "is_train": False}
    assert tuple(cfg.DATASETS.TEST) == ("first", "second")  # the caller's config is left alone


def test_the_test_mapper_refuses_training():
    with pytest.raises(ValueError, match="test-time mapper"):
        SemanticTestMapper(make_tiny_cfg(), True)


def test_a_16_bit_grayscale_image_is_scaled_to_8_bits_not_clipped(tmp_path):
    values = np.full((30, 45), 32896, dtype=np.uint16)  # round(32896 / 257) = 128; PIL's convert gives 255
    values[:, :15] = 65535
    Image.fromarray(values).save(tmp_path / "g16.png")
    mapper = build_test_mapper(make_tiny_cfg(**{"INPUT.MIN_SIZE_TEST": 30}), "any")
    out = mapper({"file_name": str(tmp_path / "g16.png")})
    assert out["image"].shape == (3, 30, 45)
    assert out["image"][:, :, 20:].unique().tolist() == [128] and out["image"][:, :, :10].unique().tolist() == [255]


def test_the_resize_is_pils_bilinear_and_the_long_side_is_capped_by_max_size_test(tmp_path):
    """60×90 with MIN_SIZE_TEST 30, MAX_SIZE_TEST 40 (MAX_SIZE_TRAIN elsewhere): the short side to 30 makes the
    long one 45 > 40, so both scale by 40 / 45: 26.67 -> 27 rows, 40 columns (Detectron2's ResizeShortestEdge,
    rounded half up). The pixels are PIL's bilinear resize of the file."""
    pixels = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    cfg = make_tiny_cfg(**{"INPUT.MIN_SIZE_TEST": 30, "INPUT.MAX_SIZE_TEST": 40, "INPUT.MAX_SIZE_TRAIN": 1000})
    out = build_test_mapper(cfg, "any")({"file_name": str(tmp_path / "a.png")})
    expected = np.asarray(Image.fromarray(pixels).resize((40, 27), Image.BILINEAR))
    assert out["image"].shape == (3, 27, 40) and (out["height"], out["width"]) == (60, 90)
    assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), expected)


def test_the_defaults_are_the_release_test_size_short_640_long_at_most_2560(tmp_path):
    """METHOD.md: the test image's short side is 640, its long side at most 2560. A 10×50 image: short side 640
    makes the long one 3200, capped to 2560, so 512×2560."""
    Image.fromarray(np.zeros((10, 50, 3), np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "small.png")
    mapper = SemanticTestMapper()
    assert mapper({"file_name": str(tmp_path / "wide.png")})["image"].shape == (3, 512, 2560)
    assert mapper({"file_name": str(tmp_path / "small.png")})["image"].shape == (3, 640, 960)
