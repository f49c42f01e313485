"""Unlabeled mask generation: SAM's automatic masks and DINO k-means clusters.

:mod:`.sam` and :mod:`.dino` build the maskers, :mod:`.generate` runs one over an images folder
(resumable, sharded); ``tools/generate_masks.py`` is the command line. ``DinoKMeansMasker`` is
also used online by the model when ``MODEL.DINO.ENABLED``.
"""
from .dino import DinoKMeansMasker, build_dino_backbone, build_dino_masker, kmeans
from .generate import BinaryMaskAdapter, generate_masks, select_shard, shard_of
from .sam import SamMasker, build_sam

__all__ = [
    "DinoKMeansMasker",
    "build_dino_backbone",
    "build_dino_masker",
    "kmeans",
    "BinaryMaskAdapter",
    "generate_masks",
    "select_shard",
    "shard_of",
    "SamMasker",
    "build_sam",
]
