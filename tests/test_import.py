"""`import pixelclip` registers the config function, backbone, meta-architectures, mappers, datasets."""
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

import pixelclip
from pixelclip.data import MAPPER_REGISTRY


def test_config_function_adds_every_section():
    cfg = get_cfg()
    pixelclip.add_pixelclip_config(cfg)
    assert cfg.MODEL.PIXELCLIP.NUM_PROMPTS == 64 and cfg.MODEL.PIXELCLIP.EPS == 100.0
    assert cfg.MODEL.PIXELCLIP.MOMENTUM == 0.999 and cfg.MODEL.DINO.ENABLED is False
    assert cfg.INPUT.DATASET_MAPPER_NAME == "pixelclip_unlabeled"
    assert "MASK_CLASSIFIER" not in cfg.MODEL  # projects/MaskClassification's keys (pixelclip_maskcls)
    pixelclip.add_pixelclip_config(cfg)  # idempotent
    recipe = pixelclip.get_pixelclip_cfg()  # + configs/Base-PixelCLIP.yaml
    assert recipe.MODEL.META_ARCHITECTURE == "PixelCLIP" and recipe.SOLVER.CLIP_GRADIENTS.CLIP_VALUE == 0.01


def test_components_are_registered():
    assert "PixelCLIPBackbone" in BACKBONE_REGISTRY
    assert "PixelCLIP" in META_ARCH_REGISTRY
    assert "pixelclip_unlabeled" in MAPPER_REGISTRY


def test_datasets_are_registered():
    names = set(DatasetCatalog.list())
    assert any(n.startswith("sa1b_") for n in names)
    for name in ("ade20k_150_test_sem_seg", "context_59_test_sem_seg", "voc_2012_test_sem_seg"):
        assert name in names, name
        assert MetadataCatalog.get(name).evaluator_type == "sem_seg"
