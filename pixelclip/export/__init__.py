"""Fine-tuned encoders out, the authors' release checkpoints in.

Out (``tools/export_clip.py``): the CLIP of a PixelCLIP checkpoint — fine-tuned image encoder
(``backbone.clip_model.visual``, or the EMA teacher ``teacher.encoder``), original text encoder — as

* an open_clip checkpoint: ``open_clip.create_model_and_transforms(name, pretrained=path)`` loads it
  strictly (what FC-CLIP's ``CLIP_MODEL_NAME`` / ``CLIP_PRETRAINED_WEIGHTS`` take);
* an OpenAI-layout ViT state dict (what OpenAI's ``clip.load(path)`` and its ``build_model`` take, and
  ZegFormer's ``CLIP_PRETRAINED`` with the change in ``projects/ZegFormer/README.md``); open_clip's ViT
  towers use OpenAI's parameter names already, and the file also holds the three scalar entries OpenAI's
  state dicts carry (``input_resolution``, ``context_length``, ``vocab_size``);
* a merge of the visual weights into another Detectron2 checkpoint under a key prefix
  (``backbone.clip_model.`` for FC-CLIP, ``sem_seg_head.predictor.clip_model.`` for ZegFormer),
  refusing missing keys and mismatched shapes, and saying which route fits a checkpoint that holds no
  CLIP at all (FC-CLIP's released checkpoints; ZegFormer's without ``CLIP_CLASSIFICATION``).

In: checkpoints of the authors' release (a Detectron2 state dict with the CLIP under
``sem_seg_head.predictor.clip_model.`` in OpenAI naming, prompts at
``sem_seg_head.predictor.prompt_tokens``, the EMA copy under ``teacher_encoder.``, the decoder under
``head.``) are mapped onto ``PixelCLIP``'s layout, reporting every key that found no place.

Modules: ``checkpoint_io`` (files to state dicts, atomic writes), ``layout`` (where the CLIP lives in
a checkpoint; the open_clip model it holds), ``clip_formats`` (open_clip and OpenAI exports),
``merge`` (into FC-CLIP / ZegFormer checkpoints), ``release`` (the authors' release in).
"""
from ..errors import ExportError
from .checkpoint_io import load_state_dict_file, read_checkpoint, save_checkpoint, state_dict_of, to_tensors
from .clip_formats import export_open_clip, export_openai, openai_state_dict
from .layout import (
    CLIP_PREFIX,
    OPENAI_SCALAR_ENTRIES,
    RELEASE_CLIP_PREFIX,
    build_clip_from_weights,
    checkpoint_layout,
    clip_state_dict,
)
from .merge import MERGE_PREFIXES, MergeReport, merge_visual_weights, no_clip_in_target_message
from .release import ImportReport, convert_release_state_dict, load_release_checkpoint

__all__ = [
    "CLIP_PREFIX", "ExportError", "ImportReport", "MERGE_PREFIXES", "MergeReport", "OPENAI_SCALAR_ENTRIES",
    "RELEASE_CLIP_PREFIX", "build_clip_from_weights", "checkpoint_layout", "clip_state_dict",
    "convert_release_state_dict", "export_open_clip", "export_openai", "load_release_checkpoint",
    "load_state_dict_file", "merge_visual_weights", "no_clip_in_target_message", "openai_state_dict",
    "read_checkpoint", "save_checkpoint", "state_dict_of", "to_tensors",
]
