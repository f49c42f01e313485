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
