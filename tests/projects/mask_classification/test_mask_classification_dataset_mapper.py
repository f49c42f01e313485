"""The test-time mapper of zero-shot mask classification
(projects/MaskClassification/pixelclip_maskcls/mask_classification_dataset_mapper.py)."""
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog

from pixelclip.data import MAPPER_REGISTRY
from pixelclip.data.mask_io import encode_masks, write_mask_file
from pixelclip_maskcls import add_mask_classification_config
from pixelclip_maskcls.mask_classification_dataset_mapper import masks_from_labels, select_masks
from tests.conftest import make_tiny_cfg
from tests.fixtures.benchmarks import make_ade20k_150_miniature, make_ade20k_847_miniature


def _mapper(name, **overrides):
    cfg = make_tiny_cfg(config_funcs=(add_mask_classification_config,), **overrides)
    cfg.DATASETS.TEST = (name,)
    cfg.INPUT.MIN_SIZE_TEST = 40
    return MAPPER_REGISTRY.get("mask_classification")(cfg, False)


def _as_sets(masks: np.ndarray):
    return {m.tobytes() for m in np.asarray(masks, dtype=bool)}


@pytest.mark.parametrize("make", [make_ade20k_150_miniature, make_ade20k_847_miniature])  # 8-bit PNG, 16-bit TIFF
def test_ground_truth_masks_one_per_class(tmp_path, make):
    mini = make(tmp_path)
    name = mini.register("test_mcm_" + uuid.uuid4().hex[:8])
    mapper = _mapper(name)
    for d, labels in zip(DatasetCatalog.get(name), mini.labels):
        out = mapper(d)
        assert "sem_seg_file_name" not in out and "sem_seg" not in out  # the labels are withheld
        assert out["image"].dtype == torch.uint8 and min(out["image"].shape[-2:]) == 40
        masks = out["masks"].numpy()
        assert masks.shape[1:] == labels.shape == (out["height"], out["width"])
        classes = [c for c in np.unique(labels) if c != mini.ignore_label]
        assert _as_sets(masks) == _as_sets([labels == c for c in classes])
        assert not masks.sum(0).max() > 1  # disjoint
        areas = masks.reshape(len(masks), -1).sum(1)
        assert list(areas) == sorted(areas, reverse=True)


def test_component_masks_and_selection():
    labels = np.array([[1, 1, 0, 1],
                       [0, 0, 0, 1],
                       [2, 255, 0, 0],
                       [2, 2, 7, 0]])
    masks = masks_from_labels(labels, ignore_label=255, num_classes=5, mode="component")
    assert _as_sets(masks) == _as_sets([labels == 0, (labels == 1) & (np.arange(4) < 2), (labels == 1) & (np.arange(4) == 3),
                                        labels == 2])  # class 7 >= num_classes is ignored
    kept = select_masks(masks, min_area=3, max_masks=2)
    assert [int(m.sum()) for m in kept] == [7, 3]
    with pytest.raises(ValueError, match="GT_MASK_MODE"):
        masks_from_labels(labels, 255, mode="instance")


def test_json_masks_and_errors(tmp_path):
    mini = make_ade20k_150_miniature(tmp_path / "data")
    name = mini.register("test_mcm_json_" + uuid.uuid4().hex[:8])
    mask_dir = tmp_path / "masks"
    mask_dir.mkdir()
    dicts = DatasetCatalog.get(name)
    d = dicts[0]
    h, w = d["height"], d["width"]
    half = np.zeros((h // 2, w // 2), dtype=bool)  # a file written at half resolution (pre-resized images)
    half[: h // 4] = True
    stem = d["file_name"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    write_mask_file(mask_dir / f"{stem}.json", {"file_name": d["file_name"], "height": h // 2, "width": w // 2},
                    encode_masks(np.stack([half, ~half])))
    mapper = _mapper(name, **{"MODEL.MASK_CLASSIFIER.MASK_SOURCE": "json",
                              "MODEL.MASK_CLASSIFIER.MASK_DIR": str(mask_dir)})
    masks = mapper(d)["masks"]
    assert masks.shape == (2, h, w) and masks.sum(0).eq(1).all()
    with pytest.raises(FileNotFoundError, match="no mask file"):
        mapper(dicts[1])
    with pytest.raises(FileNotFoundError, match="MASK_DIR"):
        _mapper(name, **{"MODEL.MASK_CLASSIFIER.MASK_SOURCE": "json",
                         "MODEL.MASK_CLASSIFIER.MASK_DIR": str(tmp_path / "no")})
    with pytest.raises(ValueError, match="MASK_SOURCE"):
        _mapper(name, **{"MODEL.MASK_CLASSIFIER.MASK_SOURCE": "sam"})
    with pytest.raises(ValueError, match="test-time mapper"):
        MAPPER_REGISTRY.get("mask_classification")(make_tiny_cfg(config_funcs=(add_mask_classification_config,)), True)
    proposals = _mapper(name, **{"MODEL.MASK_CLASSIFIER.MASK_SOURCE": "model"})(d)
    assert "masks" not in proposals and proposals["image"].shape[0] == 3
