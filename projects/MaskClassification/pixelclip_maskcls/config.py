"""Every configuration key of zero-shot mask classification, its default and its meaning.

:func:`add_mask_classification_config` adds this project's keys (``MODEL.MASK_CLASSIFIER.*`` and
``INPUT.TEST_MAPPER_NAME``) to a config that already has PixelCLIP's (:func:`pixelclip.add_pixelclip_config`:
the CLIP model, templates and test vocabulary are read from ``MODEL.PIXELCLIP.*``); it changes no
existing key. :func:`get_mask_classification_cfg` is Detectron2's defaults + both config functions +
PixelCLIP's recipe + a YAML, as ``pixelclip.get_pixelclip_cfg`` is for PixelCLIP alone.
"""
from typing import Sequence

from detectron2.config import CfgNode as CN

# the values each choice key of MODEL.MASK_CLASSIFIER takes (checked by check_choice)
CHOICES = {
    "MODE": ("dense", "crop"),
    "MASK_SOURCE": ("gt", "json", "model"),
    "GT_MASK_MODE": ("class", "component"),
    "CROP_STYLE": ("crop", "mask", "cropmask"),
}


def check_choice(key: str, value: str) -> str:
    """``value`` if it is one of ``CHOICES[key]``; else a ValueError naming ``MODEL.MASK_CLASSIFIER.<key>``."""
    if value not in CHOICES[key]:
        raise ValueError(f"MODEL.MASK_CLASSIFIER.{key} must be one of {CHOICES[key]}, got '{value}'")
    return value


def add_mask_classification_config(cfg: CN) -> None:
    """Add the keys of zero-shot mask classification to a Detectron2 config in place (idempotent)."""
    if "MASK_CLASSIFIER" in cfg.MODEL:
        return
    cfg.MODEL.MASK_CLASSIFIER = CN()
    M = cfg.MODEL.MASK_CLASSIFIER
    M.MODE = "dense"  # dense: mean of dense features in each mask (PixelCLIP); crop: masked crops, global embedding
    M.MASK_SOURCE = "gt"  # gt: ground-truth segments (oracle); json: SA-1B-style files in MASK_DIR; model: PROPOSAL_MODEL
    M.GT_MASK_MODE = "class"  # gt: class = one mask per class present; component = one per connected component
    M.MASK_DIR = ""  # folder of <image stem>.json mask files (SA-1B schema) for MASK_SOURCE json
    M.MIN_MASK_AREA = 1  # masks with fewer pixels (at the image's original resolution) are dropped
    M.MAX_MASKS = 0  # keep at most this many masks per image, largest first (0 = all)
    M.POOL_RESOLUTION = 64  # dense mode: features are bilinearly resized to this square grid before mask pooling
    M.CROP_STYLE = "cropmask"  # crop: the mask's box; mask: image, background zeroed; cropmask: both (ZegFormer)
    M.CROP_SIZE = 0  # crop mode: side of each crop fed to CLIP (0 = the image tower's native input size)
    M.CROP_BATCH = 32  # crop mode: crops per image-encoder forward pass
    M.FILL_UNCOVERED = True  # pixels no mask covers take the dense per-pixel class scores (else 0 for every class)
    M.PANOPTIC_ON = False  # also output panoptic_seg: one segment per mask, overlaps resolved by class score
    M.OVERLAP_THRESHOLD = 0.8  # panoptic: a mask keeps its segment only if this fraction of it stays visible
    M.ALPHA = 0.4  # FC-CLIP geometric ensemble: weight of CLIP's scores on seen (in-vocabulary) classes
    M.BETA = 0.8  # FC-CLIP geometric ensemble: weight of CLIP's scores on unseen classes
    M.SEEN_CLASSES = ""  # classes the in-vocabulary classifier was trained on: dataset or vocabulary ("" = none)
    M.PROPOSAL_MODEL = CN()
    M.PROPOSAL_MODEL.CONFIG_FILE = ""  # D2 config of the mask proposal model (MASK_SOURCE model)
    M.PROPOSAL_MODEL.WEIGHTS = ""  # its checkpoint
    M.PROPOSAL_MODEL.CONFIG_FUNCS = []  # dotted paths adding its keys, e.g. ["mask2former.add_maskformer2_config"]
    M.PROPOSAL_MODEL.MASK_THRESHOLD = 0.5  # soft pred_masks (probabilities; logits get a sigmoid) above this are in
    M.PROPOSAL_MODEL.SCORE_THRESHOLD = 0.0  # proposals with a lower score are dropped
    M.PROPOSAL_MODEL.USE_CLASS_SCORES = True  # ensemble the proposal model's own class scores with CLIP's (ALPHA / BETA)
    if "TEST_MAPPER_NAME" not in cfg.INPUT:  # another framework's value is kept
        cfg.INPUT.TEST_MAPPER_NAME = ""  # "" = PixelCLIP's pixelclip_semantic_test; else a pixelclip MAPPER_REGISTRY name


def get_mask_classification_cfg(config_file: str = "", opts: Sequence[str] = ()) -> CN:
    """Detectron2's defaults + PixelCLIP's and this project's keys + PixelCLIP's recipe
    (``configs/Base-PixelCLIP.yaml``), then ``config_file`` and ``opts`` (``KEY VALUE ...``)."""
    from pixelclip.config import get_pixelclip_cfg

    return get_pixelclip_cfg(config_file, opts, config_funcs=(add_mask_classification_config,))
