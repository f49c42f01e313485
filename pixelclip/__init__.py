"""PixelCLIP as a Detectron2 plugin: ``import pixelclip`` registers everything.

Registered on import: the config function :func:`add_pixelclip_config` (and :func:`get_pixelclip_cfg`,
the same with the paper's recipe ``configs/Base-PixelCLIP.yaml`` merged), the backbone
``PixelCLIPBackbone`` (BACKBONE_REGISTRY), the meta-architecture ``PixelCLIP``
(META_ARCH_REGISTRY), the dataset mappers (:data:`pixelclip.data.MAPPER_REGISTRY`, selected by
``INPUT.DATASET_MAPPER_NAME``) and the datasets (DatasetCatalog / MetadataCatalog).
"""
from .config import add_pixelclip_config, get_pixelclip_cfg
from . import data  # noqa: F401
from . import modeling  # noqa: F401

__all__ = ["add_pixelclip_config", "get_pixelclip_cfg"]
