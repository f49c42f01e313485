"""Registry of dataset mappers, selected by name from ``cfg.INPUT.DATASET_MAPPER_NAME``."""
from detectron2.utils.registry import Registry

MAPPER_REGISTRY = Registry("PIXELCLIP_MAPPER")
MAPPER_REGISTRY.__doc__ = """
Dataset mappers. A registered mapper is a class whose ``__init__`` is ``@configurable``
(``cls(cfg, is_train)`` works) and whose ``__call__`` maps one dataset dict to a model input.
"""


def build_mapper(cfg, is_train: bool = True):
    """The mapper named by ``cfg.INPUT.DATASET_MAPPER_NAME``, built from ``cfg``."""
    return MAPPER_REGISTRY.get(cfg.INPUT.DATASET_MAPPER_NAME)(cfg, is_train)


def register_mapper(name: str):
    """Class decorator: register a mapper under ``name`` (the value configs give, not the class name)."""

    def decorate(mapper_cls):
        MAPPER_REGISTRY._do_register(name, mapper_cls)  # D2's Registry.register() would use the class name
        return mapper_cls

    return decorate
