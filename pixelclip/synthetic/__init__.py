"""The embedded synthetic world of `make demo`: scenes, unlabeled masks, tiny-CLIP pre-training.

``world``: procedural scenes (image, label map, region map, caption); ``masks``: SAM-like
over-segmented noisy masks and the random-mask control; ``pretrain``: contrastive pre-training of
the tiny CLIP on image/caption pairs. Dataset registration lives in
``pixelclip/data/datasets/synthetic.py``.
"""
from .world import CLASS_NAMES, STUFF_CLASSES, THING_CLASSES, Scene, WorldConfig, generate_scene, make_caption
from .masks import MaskNoiseConfig, random_masks_like, sam_like_masks

__all__ = [
    "CLASS_NAMES", "STUFF_CLASSES", "THING_CLASSES", "Scene", "WorldConfig", "generate_scene", "make_caption",
    "MaskNoiseConfig", "random_masks_like", "sam_like_masks",
]
