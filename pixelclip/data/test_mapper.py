"""Former home of the test mapper; it lives in ``pixelclip/data/mappers/semantic_test_dataset_mapper.py``
(import it from :mod:`pixelclip.data.mappers`). This alias keeps ``tools/run_synthetic_demo.py``'s import."""
from .mappers.semantic_test_dataset_mapper import SemanticTestMapper

__all__ = ["SemanticTestMapper"]
