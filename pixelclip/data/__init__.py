"""Data: mask files, mappers and dataset registrations."""
from .registry import MAPPER_REGISTRY, build_mapper, build_test_mapper
from . import datasets  # noqa: F401  (registers datasets)
from . import mappers  # noqa: F401
