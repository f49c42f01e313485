"""Dataset mappers, one registered mapper per ``*_dataset_mapper.py`` file: training by
``cfg.INPUT.DATASET_MAPPER_NAME`` (``pixelclip_unlabeled``), test by ``cfg.INPUT.TEST_MAPPER_NAME`` where a
project's config adds that key (default ``pixelclip_semantic_test``); see ``pixelclip/data/registry.py``."""
from .semantic_test_dataset_mapper import SemanticTestMapper
from .unlabeled_dataset_mapper import PixelCLIPUnlabeledMapper

__all__ = ["PixelCLIPUnlabeledMapper", "SemanticTestMapper"]
