"""Dataset mappers, one registered mapper per file (selected by ``cfg.INPUT.DATASET_MAPPER_NAME``)."""
from .unlabeled_mapper import PixelCLIPUnlabeledMapper

__all__ = ["PixelCLIPUnlabeledMapper"]
