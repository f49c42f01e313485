"""Data: mask files, mappers and dataset registrations."""
from .registry import MAPPER_REGISTRY, build_mapper
from . import datasets  # noqa: F401  (registers datasets)
from . import mappers  # noqa: F401
from . import mask_classification_mapper  # noqa: F401  (registers the "mask_classification" test mapper)
