"""Registries: dataset mappers by name (``cfg.INPUT.DATASET_MAPPER_NAME``, ``INPUT.TEST_MAPPER_NAME``), and the one way this plugin
puts datasets into Detectron2's ``DatasetCatalog`` / ``MetadataCatalog`` without colliding with other
projects in the same process."""
import logging
from typing import Callable, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.registry import Registry

logger = logging.getLogger(__name__)

MAPPER_REGISTRY = Registry("PIXELCLIP_MAPPER")
MAPPER_REGISTRY.__doc__ = """
Dataset mappers. A registered mapper is a class whose ``__init__`` is ``@configurable``
(``cls(cfg, is_train)`` works) and whose ``__call__`` maps one dataset dict to a model input.
"""

# Every dataset of this plugin is registered as PREFIX + name, a name no other project uses.
DATASET_PREFIX = "pixelclip_"


def build_mapper(cfg, is_train: bool = True):
    """The mapper named by ``cfg.INPUT.DATASET_MAPPER_NAME``, built from ``cfg``."""
    return MAPPER_REGISTRY.get(cfg.INPUT.DATASET_MAPPER_NAME)(cfg, is_train)


# the test mapper where the config names none (INPUT.TEST_MAPPER_NAME absent or "")
DEFAULT_TEST_MAPPER = "pixelclip_semantic_test"


def build_test_mapper(cfg, dataset_name: str):
    """The test-time mapper for ``dataset_name``: the one ``cfg.INPUT.TEST_MAPPER_NAME`` names (a key projects
    add, e.g. ``mask_classification``), else ``pixelclip_semantic_test``; built from ``cfg`` with
    ``DATASETS.TEST = (dataset_name,)``, as a mapper may read the dataset's metadata (ignore label, classes)."""
    name = cfg.INPUT.get("TEST_MAPPER_NAME", "") or DEFAULT_TEST_MAPPER
    single = cfg.clone()
    single.defrost()
    single.DATASETS.TEST = (dataset_name,)
    return MAPPER_REGISTRY.get(name)(single, False)


def register_mapper(name: str):
    """Class decorator: register a mapper under ``name`` (the value configs give, not the class name)."""

    def decorate(mapper_cls):
        MAPPER_REGISTRY._do_register(name, mapper_cls)  # D2's Registry.register() would use the class name
        return mapper_cls

    return decorate


def _holder(name: str) -> str:
    """Who holds ``name`` in Detectron2's catalogs ('' when it is free): a registered dataset, or
    metadata set without one (FC-CLIP, for one, sets metadata before registering)."""
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name).as_dict() if name in MetadataCatalog.list() else {}
        return f"a dataset (metadata keys: {sorted(k for k in meta if k != 'name')})"
    if name in MetadataCatalog.list() and set(MetadataCatalog.get(name).as_dict()) - {"name"}:
        return "metadata without a dataset"
    return ""


def register_dataset(name: str, loader: Callable[[], List[dict]], *, alias: bool = True, **metadata) -> List[str]:
    """Register a dataset of this plugin under ``pixelclip_<name>`` and, when free, under ``name``.

    A name that is already taken (another project registered it, or set metadata on it) is left to
    its owner with a logged notice, never an error: Detectron2 refuses to register a name twice and to
    change metadata, so taking it would crash whichever project registers second. ``pixelclip_<name>``
    always refers to this plugin's dataset. ``alias=False`` registers only ``pixelclip_<name>``: for
    names other projects register on import (so that they can be imported after this plugin).

    Arguments:
        name: the conventional name (e.g. ``ade20k_150_test_sem_seg``); a name that already starts with
            ``pixelclip_`` is registered once.
        loader: returns the dataset dicts (called lazily, by ``DatasetCatalog.get``).
        metadata: set on each registered name's ``MetadataCatalog`` entry.
    Returns:
        the names registered by this call.
    """
    canonical = name if name.startswith(DATASET_PREFIX) else DATASET_PREFIX + name
    wanted = [canonical] + ([name] if alias and name != canonical else [])
    registered, taken = [], []
    for key in wanted:
        holder = _holder(key)
        if holder:
            taken.append(f"{key!r} ({holder})")
            continue
        DatasetCatalog.register(key, loader)
        MetadataCatalog.get(key).set(**metadata)
        registered.append(key)
    if taken:
        logger.warning("Dataset name(s) %s already taken (by another project, or an earlier registration) and "
                       "left as they are; this registration holds %s", ", ".join(taken), registered or "no name")
    return registered
