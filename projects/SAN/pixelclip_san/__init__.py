"""PixelCLIP's fine-tuned image encoder inside SAN (Xu et al., CVPR 2023; github.com/MendelXu/SAN).

``import pixelclip_san`` registers ``ViT-B-16-quickgelu`` & co. in open_clip versions that lack them
(SAN pins open_clip 2.16.0; :mod:`pixelclip_san.quickgelu`), so SAN can build a QuickGELU CLIP from a
file. The package imports torch and open_clip only, not ``pixelclip``: it runs in SAN's environment.

* :mod:`pixelclip_san.layout`: where SAN keeps the CLIP (``clip_visual_extractor`` / ``clip_rec_head``
  split at ``FEATURE_LAST_LAYER_IDX``, the text tower under ``ov_classifier``) and the key map;
* :mod:`pixelclip_san.merge`: the export merged into a SAN checkpoint, SAN's positional embedding kept;
* :mod:`pixelclip_san.verify`: does a loaded SAN model (or a checkpoint) hold the export, tensor by tensor;
* :mod:`pixelclip_san.checkpoints`: files in and out.

Command lines: ``projects/SAN/merge_san.py`` and ``projects/SAN/check_san.py``.
"""
from .errors import SanWeightsError
from .layout import remap_text, remap_visual, san_block_counts, san_visual_key
from .merge import SanMergeReport, merge_into_san
from .quickgelu import clip_activations, register_quickgelu_configs
from .verify import HoldReport, check_san_holds

ADDED_QUICKGELU_CONFIGS = register_quickgelu_configs()

__all__ = ["ADDED_QUICKGELU_CONFIGS", "HoldReport", "SanMergeReport", "SanWeightsError", "check_san_holds",
           "clip_activations", "merge_into_san", "register_quickgelu_configs", "remap_text", "remap_visual",
           "san_block_counts", "san_visual_key"]
