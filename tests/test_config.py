"""add_pixelclip_config adds only PixelCLIP's keys; the recipe lives in configs/Base-PixelCLIP.yaml, and
every YAML of the repository still gives the values it gave when the config function set the recipe."""
import re
from pathlib import Path

import pytest
import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from pixelclip import add_pixelclip_config, get_pixelclip_cfg

ROOT = Path(__file__).resolve().parents[1]
OWN_SECTIONS = ("MODEL.PIXELCLIP.", "MODEL.DINO.")
# keys Detectron2 0.7 lacks that PixelCLIP's code reads (pixelclip/data, solver.py, trainer.py)
ADDED_D2_SECTION_KEYS = {
    "INPUT.DATASET_MAPPER_NAME": "pixelclip_unlabeled",
    "INPUT.COLOR_AUG_SSD": False, "INPUT.STRONG_AUG": False, "INPUT.STRONG_CUTOUT": True,
    "SOLVER.OPTIMIZER": "SGD", "SOLVER.CLIP_MULTIPLIER": 1.0, "SOLVER.PROMPT_MULTIPLIER": 1.0,
    "SOLVER.AMP.PRECISION": "float16",  # what D2's AMPTrainer uses without it
    "TEST.IMS_PER_BATCH": 1,
}


def _flat(node: CN, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, CN):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = list(value) if isinstance(value, tuple) else value
    return out


def test_adding_the_config_changes_no_detectron2_key():
    before = _flat(get_cfg())
    cfg = get_cfg()
    add_pixelclip_config(cfg)
    after = _flat(cfg)
    assert {k: after[k] for k in before} == before
    added = {k: v for k, v in after.items() if k not in before}
    assert {k: v for k, v in added.items() if not k.startswith(OWN_SECTIONS)} == ADDED_D2_SECTION_KEYS
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" and cfg.SOLVER.BASE_LR == 0.001


def test_a_framework_that_set_the_shared_keys_keeps_them():
    cfg = get_cfg()  # what Mask2Former's / FC-CLIP's config functions set before ours
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_panoptic"
    cfg.INPUT.COLOR_AUG_SSD = True
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    cfg.TEST.IMS_PER_BATCH = 2
    before = _flat(cfg)
    add_pixelclip_config(cfg)
    after = _flat(cfg)
    assert {k: after[k] for k in before} == before


# The values each YAML gave before the recipe moved out of the config function (computed once from the
# previous code), with one deliberate change: SOLVER.WEIGHT_DECAY_NORM 0.0 (the release reads it unset,
# Detectron2's default applies; the previous config function set 1e-4).
RECIPE = {
    "MODEL.META_ARCHITECTURE": "PixelCLIP", "MODEL.BACKBONE.NAME": "PixelCLIPBackbone", "MODEL.BACKBONE.FREEZE_AT": 0,
    "MODEL.PIXEL_MEAN": [122.7709383, 116.7460125, 104.09373615], "MODEL.PIXEL_STD": [68.5005327, 66.6321579, 70.32316305],
    "MODEL.PIXELCLIP.CLIP_MODEL_NAME": "ViT-B-16-quickgelu", "MODEL.PIXELCLIP.CLIP_PRETRAINED": "openai",
    "MODEL.PIXELCLIP.CLIP_FINETUNE": "attention", "MODEL.PIXELCLIP.CLIP_RESOLUTION": [320, 320],
    "MODEL.PIXELCLIP.NUM_PROMPTS": 64, "MODEL.PIXELCLIP.PROMPT_LENGTH": 4, "MODEL.PIXELCLIP.EPS": 100.0,
    "MODEL.PIXELCLIP.MOMENTUM": 0.999, "MODEL.PIXELCLIP.MASK_RESOLUTION": 256,
    "MODEL.PIXELCLIP.TEST.TEMPLATES": "imagenet_select", "MODEL.DINO.ENABLED": False,
    "SOLVER.OPTIMIZER": "ADAMW", "SOLVER.BASE_LR": 2e-4, "SOLVER.BASE_LR_END": 1e-4,
    "SOLVER.LR_SCHEDULER_NAME": "WarmupCosineLR", "SOLVER.WARMUP_ITERS": 0, "SOLVER.WEIGHT_DECAY": 1e-4,
    "SOLVER.WEIGHT_DECAY_NORM": 0.0, "SOLVER.MAX_ITER": 10000, "SOLVER.IMS_PER_BATCH": 48,
    "SOLVER.CLIP_MULTIPLIER": 0.01, "SOLVER.PROMPT_MULTIPLIER": 10.0, "SOLVER.CHECKPOINT_PERIOD": 1000,
    "SOLVER.CLIP_GRADIENTS.ENABLED": True, "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "full_model",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 0.01, "SOLVER.CLIP_GRADIENTS.NORM_TYPE": 2.0,
    "INPUT.DATASET_MAPPER_NAME": "pixelclip_unlabeled", "INPUT.FORMAT": "RGB",
    "INPUT.MIN_SIZE_TRAIN": [1024], "INPUT.MIN_SIZE_TRAIN_SAMPLING": "choice", "INPUT.MAX_SIZE_TRAIN": 1333,
    "INPUT.CROP.ENABLED": True, "INPUT.CROP.TYPE": "absolute", "INPUT.CROP.SIZE": [640, 640],
    "INPUT.COLOR_AUG_SSD": True, "INPUT.STRONG_AUG": True, "INPUT.STRONG_CUTOUT": True, "INPUT.MIN_SIZE_TEST": 640,
    "INPUT.MAX_SIZE_TEST": 2560,
    "TEST.IMS_PER_BATCH": 8, "TEST.EVAL_PERIOD": 0, "DATALOADER.NUM_WORKERS": 8, "CUDNN_BENCHMARK": True,
    "DATALOADER.FILTER_EMPTY_ANNOTATIONS": False,
    "DATASETS.TRAIN": ["sa1b_train"], "DATASETS.TEST": ["ade20k_150_test_sem_seg"],
}
PAPER_TEST = {"DATASETS.TEST": ["coco_2017_test_stuff_all_sem_seg", "ade20k_150_test_sem_seg",
                                "context_59_test_sem_seg", "cityscapes_19_val_sem_seg", "voc_2012_test_sem_seg"]}
CONVNEXT = {"MODEL.PIXELCLIP.CLIP_FINETUNE": "full", "MODEL.PIXELCLIP.CLIP_RESOLUTION": [640, 640],
            "MODEL.PIXELCLIP.EPS": 1.0}
SYNTHETIC = {
    "MODEL.PIXELCLIP.CLIP_MODEL_NAME": "PixelCLIP-Synthetic-ViT",
    "MODEL.PIXELCLIP.CLIP_PRETRAINED": "pixelclip/synthetic/weights/synthetic_clip_vit_seed0.pt",
    "MODEL.PIXELCLIP.CLIP_RESOLUTION": [96, 96], "MODEL.PIXELCLIP.NUM_PROMPTS": 8, "MODEL.PIXELCLIP.MOMENTUM": 0.99,
    "MODEL.PIXELCLIP.MASK_RESOLUTION": 48, "MODEL.PIXELCLIP.TEST.TEMPLATES": "single", "SOLVER.MAX_ITER": 250,
    "SOLVER.IMS_PER_BATCH": 8, "SOLVER.CLIP_MULTIPLIER": 0.01, "SOLVER.CHECKPOINT_PERIOD": 100000,
    "SOLVER.BASE_LR": 0.003, "SOLVER.BASE_LR_END": 0.0015, "SOLVER.PROMPT_MULTIPLIER": 0.6667,
    "INPUT.MIN_SIZE_TRAIN": [96, 112, 128], "INPUT.MAX_SIZE_TRAIN": 1000, "INPUT.CROP.SIZE": [96, 96],
    "INPUT.MIN_SIZE_TEST": 96, "INPUT.MAX_SIZE_TEST": 1000, "TEST.IMS_PER_BATCH": 32, "DATALOADER.NUM_WORKERS": 0,
    "DATASETS.TRAIN": ["synthetic_train"], "DATASETS.TEST": ["synthetic_val_sem_seg"],
}
EXPECTED = {
    "configs/Base-PixelCLIP.yaml": {},
    "configs/pixelclip_vitb.yaml": PAPER_TEST,
    "configs/pixelclip_vitb_dino.yaml": {**PAPER_TEST, "MODEL.DINO.ENABLED": True},
    "configs/pixelclip_vitl.yaml": {**PAPER_TEST, "MODEL.PIXELCLIP.CLIP_MODEL_NAME": "ViT-L-14-quickgelu",
                                    "MODEL.PIXELCLIP.CLIP_RESOLUTION": [336, 336]},
    "configs/pixelclip_convnext_b.yaml": {**PAPER_TEST, **CONVNEXT, "MODEL.PIXELCLIP.CLIP_MODEL_NAME": "convnext_base_w_320",
                                         "MODEL.PIXELCLIP.CLIP_PRETRAINED": "laion_aesthetic_s13b_b82k"},
    "configs/pixelclip_convnext_l.yaml": {**PAPER_TEST, **CONVNEXT, "MODEL.PIXELCLIP.CLIP_MODEL_NAME": "convnext_large_d_320",
                                         "MODEL.PIXELCLIP.CLIP_PRETRAINED": "laion2b_s29b_b131k_ft_soup"},
    "configs/synthetic/Base-Synthetic.yaml": SYNTHETIC,
    "configs/synthetic/clip_baseline.yaml": SYNTHETIC,
    "configs/synthetic/pixelclip.yaml": SYNTHETIC,
    "configs/synthetic/random_masks.yaml": {**SYNTHETIC, "DATASETS.TRAIN": ["synthetic_train_random_masks"]},
    "configs/synthetic/no_ema.yaml": {**SYNTHETIC, "MODEL.PIXELCLIP.USE_MOMENTUM": False},
    "configs/synthetic/frozen_prompts.yaml": {**SYNTHETIC, "MODEL.PIXELCLIP.LEARN_PROMPTS": False},
    "configs/synthetic/k16.yaml": {**SYNTHETIC, "MODEL.PIXELCLIP.NUM_PROMPTS": 16},
    "configs/synthetic/k32.yaml": {**SYNTHETIC, "MODEL.PIXELCLIP.NUM_PROMPTS": 32},
    "configs/synthetic/k64.yaml": {**SYNTHETIC, "MODEL.PIXELCLIP.NUM_PROMPTS": 64},
}


def test_every_yaml_of_the_repository_is_listed():
    """The projects' YAMLs need their own config functions: tests/projects/*/test_config.py."""
    found = {str(p.relative_to(ROOT)) for p in ROOT.glob("configs/**/*.yaml")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_yaml_gives_the_recipe_values(name):
    cfg = get_cfg()
    add_pixelclip_config(cfg)
    cfg.merge_from_file(str(ROOT / name))  # what tools/train_net.py does with --config-file
    values = _flat(cfg)
    expected = {**RECIPE, **EXPECTED[name]}
    assert {k: values[k] for k in expected} == expected
    # the tools' entry point (recipe first, then the file) gives the same config
    assert _flat(get_pixelclip_cfg(str(ROOT / name))) == values


@pytest.mark.parametrize("k", [0, -3])
def test_num_prompts_below_one_is_a_config_error_before_anything_is_built(k, monkeypatch):
    from detectron2.modeling import build_model

    import pixelclip.modeling.pixelclip as meta
    from pixelclip.config import check_pixelclip_values
    from pixelclip.errors import ConfigError
    from tests.conftest import make_tiny_cfg

    cfg = make_tiny_cfg(**{"MODEL.PIXELCLIP.NUM_PROMPTS": k})
    monkeypatch.setattr(meta, "build_backbone", lambda cfg: pytest.fail("the backbone was built"))
    message = (f"x.yaml: MODEL.PIXELCLIP.NUM_PROMPTS is {k}, but K, the number of learnable class prompts (global "
               "semantic clusters), must be at least 1 — give a positive number, e.g. MODEL.PIXELCLIP.NUM_PROMPTS 64")
    with pytest.raises(ConfigError) as error:
        check_pixelclip_values(cfg, "x.yaml")
    assert str(error.value).startswith(message)
    with pytest.raises(ConfigError, match=f"config: MODEL.PIXELCLIP.NUM_PROMPTS is {k}, but"):
        build_model(cfg)  # the model's own check, for library use without the tools
    check_pixelclip_values(make_tiny_cfg(**{"MODEL.PIXELCLIP.NUM_PROMPTS": 1}))  # 1 is fine


@pytest.mark.parametrize("key, value, requirement", [
    ("MODEL.PIXELCLIP.MOMENTUM", "1.5", "a number in [0, 1]"),
    ("MODEL.PIXELCLIP.MOMENTUM", "-0.1", "a number in [0, 1]"),
    ("MODEL.PIXELCLIP.MASK_RESOLUTION", "0", "an integer of at least 1"),
    ("MODEL.PIXELCLIP.PROMPT_LENGTH", "0", "an integer of at least 1"),
    ("MODEL.PIXELCLIP.EPS", "0.0", "a number above 0"),
    ("MODEL.PIXELCLIP.SINKHORN_ITERS", "-1", "an integer of at least 0"),
    ("MODEL.PIXELCLIP.MAX_MASKS", "-5", "an integer of at least 0 (0 keeps every mask)"),
    ("MODEL.PIXELCLIP.CLIP_RESOLUTION", "(320, 0)", "two positive integers (H, W)"),
    ("MODEL.PIXELCLIP.DECODER_CHANNELS", "(64,)", "two positive integers"),
    ("MODEL.PIXELCLIP.DENSE_MODE", "clear_clip", "one of value, vanilla, maskclip, sclip, clearclip, naclip"),
    ("MODEL.PIXELCLIP.CLIP_FINETUNE", "attn", "one of attention, full, conv, prompt, none"),
    ("MODEL.PIXELCLIP.TEST.MODE", "sliding", "whole or slide"),
    ("MODEL.PIXELCLIP.TEST.SLIDE_OVERLAP", "1.0", "a number in [0, 1)"),
    ("MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION", "0", "an integer of at least 1"),
    ("MODEL.PIXELCLIP.TEST.AUTOCAST", "fp32", "'', fp16 or bf16"),
    ("MODEL.PIXELCLIP.TEST.OUTPUT", "probs", "logits or labels"),
    ("MODEL.PIXELCLIP.TEST.TEMPLATES", "openai", "one of single, imagenet_select, scene14, imagenet"),
    ("MODEL.DINO.NUM_CLUSTERS", "0", "an integer of at least 1"),
    ("MODEL.DINO.KMEANS_ITERS", "0", "an integer of at least 1"),
    ("MODEL.DINO.KMEANS_TOL", "-0.001", "a number of at least 0"),
    ("MODEL.DINO.INPUT_SIZE", "-1", "an integer of at least 0 (0: the crop as it is)"),
])
def test_values_outside_their_range_are_one_config_error_naming_where_they_came_from(tmp_path, key, value,
                                                                                   requirement):
    from pixelclip.errors import ConfigError
    from pixelclip.utils.cli import load_config

    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text("_BASE_: " + str(Path(__file__).resolve().parents[1] / "configs" / "pixelclip_vitb.yaml") + "\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(yaml_file), [key, value])
    shown = yaml.safe_load(value) if value[0] != "(" else tuple(yaml.safe_load("[" + value[1:-1] + "]"))
    assert str(error.value).startswith(f"command line: {key} is {shown!r}, but it must be {requirement} — "
                                       f"give another value, e.g. {key} "), str(error.value)
    # the same value written in the file: the file is named
    parts = key.split(".")
    nested = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parts[:-1])) + f"{'  ' * (len(parts) - 1)}{parts[-1]}: "
    yaml_file.write_text(yaml_file.read_text() + nested + (f"[{value[1:-1]}]" if value[0] == "(" else value) + "\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(yaml_file))}: {re.escape(key)} is "):
        load_config(str(yaml_file), [])


def test_online_dino_masks_without_weights_are_refused_before_building(tmp_path):
    from pixelclip.errors import ConfigError
    from pixelclip.utils.cli import load_config

    config = str(Path(__file__).resolve().parents[1] / "configs" / "pixelclip_vitb.yaml")
    with pytest.raises(ConfigError, match=r"^command line: MODEL.DINO.ENABLED needs MODEL.DINO.WEIGHTS, a local file "
                       r"with the DINO ViT-S/16 weights — give MODEL.DINO.WEIGHTS /path/to/"):
        load_config(config, ["MODEL.DINO.ENABLED", "True"])
    load_config(config, ["MODEL.DINO.ENABLED", "True", "MODEL.DINO.WEIGHTS", "random"])  # accepted


# MODEL.PIXELCLIP / MODEL.DINO keys no YAML of the paper sets: their defaults are the method
# (/work/shared/METHOD.md: MaskCLIP-style value path, whole-image inference at 320² without flipping,
# logits out, DINO ViT-S/16 k-means with 16 clusters as fast_pytorch_kmeans, every mask, TF32 as the release).
METHOD_DEFAULTS = {
    "MODEL.PIXELCLIP.DENSE_MODE": "value", "MODEL.PIXELCLIP.SINKHORN_ITERS": 3, "MODEL.PIXELCLIP.USE_MOMENTUM": True,
    "MODEL.PIXELCLIP.LEARN_PROMPTS": True, "MODEL.PIXELCLIP.PROMPT_INIT_SEED": 0, "MODEL.PIXELCLIP.PROMPT_INIT_WORDS": "",
    "MODEL.PIXELCLIP.PROMPT_TEMPLATE": "A photo of a {} in the scene", "MODEL.PIXELCLIP.MAX_MASKS": 0,
    "MODEL.PIXELCLIP.DECODER_CHANNELS": [64, 32], "MODEL.PIXELCLIP.DECODER_NORM_GROUPS": 0,
    "MODEL.PIXELCLIP.ALLOW_TF32": True, "MODEL.PIXELCLIP.GRADIENT_CHECKPOINTING": False,
    "MODEL.PIXELCLIP.ALLOW_PARTIAL_WEIGHTS": False,
    "MODEL.PIXELCLIP.TEST.MODE": "whole", "MODEL.PIXELCLIP.TEST.FLIP": False, "MODEL.PIXELCLIP.TEST.AUTOCAST": "",
    "MODEL.PIXELCLIP.TEST.OUTPUT": "logits", "MODEL.PIXELCLIP.TEST.VOCABULARY": "",
    "MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION": 64, "MODEL.PIXELCLIP.TEST.SLIDE_OVERLAP": 0.333,
    "MODEL.DINO.MODEL_NAME": "vit_small_patch16_224", "MODEL.DINO.NUM_CLUSTERS": 16, "MODEL.DINO.KMEANS_ITERS": 100,
    "MODEL.DINO.KMEANS_TOL": 1e-4, "MODEL.DINO.INPUT_SIZE": 0,
}


@pytest.mark.parametrize("name", ["configs/pixelclip_vitb.yaml", "configs/pixelclip_vitb_dino.yaml",
                                  "configs/pixelclip_convnext_b.yaml"])
def test_keys_no_paper_yaml_sets_have_the_methods_values(name):
    bare = get_cfg()
    add_pixelclip_config(bare)
    assert {k: _flat(bare)[k] for k in METHOD_DEFAULTS} == METHOD_DEFAULTS
    values = _flat(get_pixelclip_cfg(str(ROOT / name)))
    assert {k: values[k] for k in METHOD_DEFAULTS} == METHOD_DEFAULTS


@pytest.mark.parametrize("key, value", [
    ("MODEL.PIXELCLIP.NUM_PROMPTS", "1"), ("MODEL.PIXELCLIP.PROMPT_LENGTH", "1"), ("MODEL.PIXELCLIP.MOMENTUM", "0.0"),
    ("MODEL.PIXELCLIP.MOMENTUM", "1.0"), ("MODEL.PIXELCLIP.SINKHORN_ITERS", "0"), ("MODEL.PIXELCLIP.MASK_RESOLUTION", "1"),
    ("MODEL.PIXELCLIP.EPS", "1e-6"), ("MODEL.PIXELCLIP.TEST.SLIDE_OVERLAP", "0.0"),
    ("MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION", "1"), ("MODEL.PIXELCLIP.CLIP_RESOLUTION", "(1, 1)"),
    ("MODEL.DINO.NUM_CLUSTERS", "1"), ("MODEL.DINO.KMEANS_ITERS", "1"), ("MODEL.DINO.KMEANS_TOL", "0.0"),
])
def test_values_at_the_edge_of_their_range_are_accepted(key, value):
    """The ranges of check_pixelclip_values are closed where the method allows it: MOMENTUM 0 (the teacher is
    the student) and 1 (a frozen teacher), no Sinkhorn iteration, K = 1, zero k-means tolerance, no overlap."""
    from pixelclip.utils.cli import load_config

    import ast

    cfg = load_config(str(ROOT / "configs" / "pixelclip_vitb.yaml"), [key, value])
    expected = ast.literal_eval(value)  # how yacs reads a command-line value
    assert _flat(cfg)[key] == (list(expected) if isinstance(expected, tuple) else expected)


@pytest.mark.parametrize("key, value", [("MODEL.PIXELCLIP.NUM_PROMPTS", True), ("MODEL.PIXELCLIP.PROMPT_LENGTH", True),
                                        ("MODEL.PIXELCLIP.MASK_RESOLUTION", 8.0)])
def test_booleans_and_floats_are_not_counts(key, value):
    from pixelclip.config import check_pixelclip_values
    from pixelclip.errors import ConfigError
    from tests.conftest import make_tiny_cfg

    with pytest.raises(ConfigError, match=f"^config: {re.escape(key)} is {value!r}, but "):
        check_pixelclip_values(make_tiny_cfg(**{key: value}))


def test_get_pixelclip_cfg_applies_overrides_last_and_the_recipe_over_config_funcs():
    def framework(cfg):  # a project's config function that sets a key the recipe also sets
        cfg.SOLVER.OPTIMIZER = "SGD"

    cfg = get_pixelclip_cfg(str(ROOT / "configs" / "pixelclip_vitb.yaml"), ["MODEL.PIXELCLIP.EPS", "1.0"],
                            config_funcs=(framework,))
    assert cfg.MODEL.PIXELCLIP.EPS == 1.0 and cfg.SOLVER.OPTIMIZER == "ADAMW"
    assert get_pixelclip_cfg(config_funcs=(framework,)).SOLVER.OPTIMIZER == "ADAMW"  # no file: the recipe alone
