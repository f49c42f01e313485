"""add_mask_classification_config adds only the project's keys, and every YAML of the project gives the
values it gave when these keys were part of add_pixelclip_config (literal values, from that code)."""
from pathlib import Path

import pytest
from detectron2.config import get_cfg

from pixelclip import add_pixelclip_config
from pixelclip_maskcls import add_mask_classification_config, get_mask_classification_cfg
from tests.test_config import PAPER_TEST, RECIPE, SYNTHETIC, _flat

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = "projects/MaskClassification/configs/"

# Every key of the project and its default, as add_pixelclip_config set them before they moved here.
DEFAULTS = {
    "INPUT.TEST_MAPPER_NAME": "", "MODEL.MASK_CLASSIFIER.MODE": "dense", "MODEL.MASK_CLASSIFIER.MASK_SOURCE": "gt",
    "MODEL.MASK_CLASSIFIER.GT_MASK_MODE": "class", "MODEL.MASK_CLASSIFIER.MASK_DIR": "",
    "MODEL.MASK_CLASSIFIER.MIN_MASK_AREA": 1, "MODEL.MASK_CLASSIFIER.MAX_MASKS": 0,
    "MODEL.MASK_CLASSIFIER.POOL_RESOLUTION": 64, "MODEL.MASK_CLASSIFIER.CROP_STYLE": "cropmask",
    "MODEL.MASK_CLASSIFIER.CROP_SIZE": 0, "MODEL.MASK_CLASSIFIER.CROP_BATCH": 32,
    "MODEL.MASK_CLASSIFIER.FILL_UNCOVERED": True, "MODEL.MASK_CLASSIFIER.PANOPTIC_ON": False,
    "MODEL.MASK_CLASSIFIER.OVERLAP_THRESHOLD": 0.8, "MODEL.MASK_CLASSIFIER.ALPHA": 0.4,
    "MODEL.MASK_CLASSIFIER.BETA": 0.8, "MODEL.MASK_CLASSIFIER.SEEN_CLASSES": "",
    "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.CONFIG_FILE": "", "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.WEIGHTS": "",
    "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.CONFIG_FUNCS": [], "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.MASK_THRESHOLD": 0.5,
    "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.SCORE_THRESHOLD": 0.0,
    "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.USE_CLASS_SCORES": True,
}
MASK_CLASSIFICATION = {"MODEL.META_ARCHITECTURE": "ZeroShotMaskClassifier", "MODEL.PIXELCLIP.CLIP_FINETUNE": "none",
                       "INPUT.TEST_MAPPER_NAME": "mask_classification", "DATASETS.TRAIN": []}
MC_SYNTHETIC = {**SYNTHETIC, **MASK_CLASSIFICATION, "MODEL.MASK_CLASSIFIER.POOL_RESOLUTION": 96}
EXPECTED = {
    "Base-MaskClassification.yaml": {**MASK_CLASSIFICATION, "TEST.IMS_PER_BATCH": 1},
    "gt_dense_vitb.yaml": {**PAPER_TEST, **MASK_CLASSIFICATION, "TEST.IMS_PER_BATCH": 1},
    "gt_crop_vitb.yaml": {**PAPER_TEST, **MASK_CLASSIFICATION, "TEST.IMS_PER_BATCH": 1,
                          "MODEL.MASK_CLASSIFIER.MODE": "crop"},
    "gt_dense_convnext_b.yaml": {
        **PAPER_TEST, **MASK_CLASSIFICATION, "TEST.IMS_PER_BATCH": 1,
        "MODEL.PIXELCLIP.CLIP_MODEL_NAME": "convnext_base_w_320",
        "MODEL.PIXELCLIP.CLIP_PRETRAINED": "laion_aesthetic_s13b_b82k", "MODEL.PIXELCLIP.CLIP_RESOLUTION": [640, 640]},
    "json_dense_vitb.yaml": {**MASK_CLASSIFICATION, "TEST.IMS_PER_BATCH": 1,
                             "MODEL.MASK_CLASSIFIER.MASK_SOURCE": "json",
                             "MODEL.MASK_CLASSIFIER.MASK_DIR": "output/masks/ade20k_150_val",
                             "MODEL.MASK_CLASSIFIER.MIN_MASK_AREA": 16, "MODEL.MASK_CLASSIFIER.PANOPTIC_ON": True},
    "synthetic_gt_dense.yaml": {**MC_SYNTHETIC, "DATASETS.TRAIN": []},
    "synthetic_gt_crop.yaml": {**MC_SYNTHETIC, "DATASETS.TRAIN": [], "MODEL.MASK_CLASSIFIER.MODE": "crop"},
}


def _pixelclip_cfg():
    cfg = get_cfg()
    add_pixelclip_config(cfg)
    return cfg


def test_adding_the_config_changes_no_existing_key():
    before = _flat(_pixelclip_cfg())
    cfg = _pixelclip_cfg()
    add_mask_classification_config(cfg)
    after = _flat(cfg)
    assert {k: after[k] for k in before} == before
    assert {k: v for k, v in after.items() if k not in before} == DEFAULTS
    add_mask_classification_config(cfg)  # idempotent
    assert _flat(cfg) == after
    framework = _pixelclip_cfg()  # a framework that already set the shared key keeps its value
    framework.INPUT.TEST_MAPPER_NAME = "its_own_mapper"
    add_mask_classification_config(framework)
    assert framework.INPUT.TEST_MAPPER_NAME == "its_own_mapper"


def test_every_yaml_of_the_project_is_listed():
    found = {p.name for p in (ROOT / CONFIGS).glob("*.yaml")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_yaml_gives_the_values_it_gave_before(name):
    cfg = _pixelclip_cfg()
    add_mask_classification_config(cfg)
    cfg.merge_from_file(str(ROOT / CONFIGS / name))  # what the project's train_net.py does with --config-file
    values = _flat(cfg)
    expected = {**RECIPE, **DEFAULTS, **EXPECTED[name]}
    assert {k: values[k] for k in expected} == expected
    # the project's entry point (recipe first, then the file) gives the same config
    assert _flat(get_mask_classification_cfg(str(ROOT / CONFIGS / name))) == values
    # PixelCLIP's config alone does not know the project's keys
    with pytest.raises(KeyError, match="MASK_CLASSIFIER"):
        _pixelclip_cfg().merge_from_file(str(ROOT / CONFIGS / name))
