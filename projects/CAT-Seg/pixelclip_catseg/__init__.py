"""PixelCLIP's encoder inside CAT-Seg (Cho et al., "CAT-Seg: Cost Aggregation for Open-Vocabulary Semantic
Segmentation", CVPR 2024; github.com/cvlab-kaist/CAT-Seg).

``layout`` (CAT-Seg's key names and ``CLIP_PRETRAINED`` table, q/k/v split and merge) and ``verify`` (does a
loaded CAT-Seg model hold the export?) are pure torch and register nothing, so they can run inside CAT-Seg's
process; ``export`` (PixelCLIP checkpoint -> CAT-Seg ``MODEL.WEIGHTS``) imports ``pixelclip``. This package
registers no Detectron2 component and adds no config key.
"""
from .layout import CATSEG_CLIP_PREFIX, CATSEG_CLIPS, CATSegCLIP, CATSegLayoutError, catseg_clip, merge_attention, \
    split_attention
from .verify import CATSegWeightsError, VerifyReport, assert_model_holds_export, compare_with_export

__all__ = ["CATSEG_CLIP_PREFIX", "CATSEG_CLIPS", "CATSegCLIP", "CATSegLayoutError", "CATSegWeightsError",
           "VerifyReport", "assert_model_holds_export", "catseg_clip", "compare_with_export", "merge_attention",
           "split_attention"]
