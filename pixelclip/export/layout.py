"""Where the CLIP lives in a checkpoint (this project's layout, the authors' release, plain open_clip),
and the open_clip model it holds."""
import logging
import os
import re
from typing import Dict, Mapping, Tuple

import torch
from torch import nn

from ..errors import ExportError
from .checkpoint_io import load_state_dict_file

logger = logging.getLogger(__name__)

CLIP_PREFIX = "backbone.clip_model."  # PixelCLIP: the whole open_clip model
TEACHER_PREFIX = "teacher.encoder."  # PixelCLIP: EMA copy of the image tower
PROMPTS_KEY = "prompts.prompt_tokens"
DECODER_PREFIX = "decoder.layers."
RELEASE_CLIP_PREFIX = "sem_seg_head.predictor.clip_model."
RELEASE_PROMPTS_KEY = "sem_seg_head.predictor.prompt_tokens"
RELEASE_TEACHER_PREFIX = "teacher_encoder."
RELEASE_HEAD_PREFIX = "head."
# Scalar (0-dim int64) entries of OpenAI's CLIP state dicts beside the weights; OpenAI's build_model
# (and ZegFormer's copy of it) infers the sizes from the weights and deletes these three before loading.
OPENAI_SCALAR_ENTRIES = ("input_resolution", "context_length", "vocab_size")


def checkpoint_layout(sd: Mapping[str, torch.Tensor]) -> str:
    """``pixelclip`` (this project), ``release`` (the authors' release) or ``open_clip`` (a plain
    open_clip / OpenAI CLIP state dict)."""
    if any(k.startswith(CLIP_PREFIX) for k in sd):
        return "pixelclip"
    if any(k.startswith(RELEASE_CLIP_PREFIX) for k in sd):
        return "release"
    if any(k.startswith("visual.") for k in sd) and "token_embedding.weight" in sd:
        return "open_clip"
    sample = ", ".join(sorted(sd)[:5])
    raise ExportError(f"unknown checkpoint layout: no '{CLIP_PREFIX}', '{RELEASE_CLIP_PREFIX}' nor open_clip keys "
                      f"(first keys: {sample})")


def clip_state_dict(sd: Mapping[str, torch.Tensor], use_teacher: bool = False) -> Dict[str, torch.Tensor]:
    """open_clip ``CLIP`` state dict of any supported layout: the fine-tuned image tower (the student,
    or the EMA teacher with ``use_teacher``) and the (frozen, original) text tower."""
    layout = checkpoint_layout(sd)
    if layout == "open_clip":
        if use_teacher:
            raise ExportError("a plain open_clip checkpoint has no EMA teacher")
        return {k: v for k, v in sd.items() if k not in OPENAI_SCALAR_ENTRIES}
    prefix = CLIP_PREFIX if layout == "pixelclip" else RELEASE_CLIP_PREFIX
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if use_teacher:
        teacher_prefix = TEACHER_PREFIX if layout == "pixelclip" else RELEASE_TEACHER_PREFIX + "visual."
        teacher = {"visual." + k[len(teacher_prefix):]: v for k, v in sd.items() if k.startswith(teacher_prefix)}
        if not teacher:
            raise ExportError(f"the checkpoint has no EMA teacher ('{teacher_prefix}*'); was it trained with "
                              "MODEL.PIXELCLIP.USE_MOMENTUM True?")
        missing = sorted(k for k in out if k.startswith("visual.") and k not in teacher)
        if missing:
            raise ExportError(f"the teacher lacks image-encoder keys of the student, e.g. {missing[:3]}")
        out = {k: v for k, v in out.items() if not k.startswith("visual.")}
        out.update(teacher)
    return out


def build_clip_from_weights(model_name: str, weights: str = "", use_teacher: bool = False) -> Tuple[nn.Module, object]:
    """``(open_clip model, tokenizer)`` from an open_clip tag, an open_clip/OpenAI file, or a
    PixelCLIP / release Detectron2 checkpoint (its fine-tuned CLIP)."""
    from ..clip.build import ClipWeightsError, build_clip_model, weights_loaded_next

    if weights and os.path.isfile(weights):
        try:
            sd = load_state_dict_file(weights)
            layout = checkpoint_layout(sd)
        except ExportError as e:
            raise ClipWeightsError(str(e)) from e
        if layout == "open_clip" and not use_teacher and not any(k in sd for k in OPENAI_SCALAR_ENTRIES):
            return build_clip_model(model_name, weights)  # open_clip's own loader
        with weights_loaded_next(weights):
            model, tokenizer = build_clip_model(model_name, "")
        try:
            state = clip_state_dict(sd, use_teacher)
            model.load_state_dict(state, strict=True)
        except (RuntimeError, ExportError) as e:
            raise ClipWeightsError(f"the CLIP in {weights} ({layout} layout) does not fit '{model_name}': "
                                   f"{one_line_load_error(e)}",
                                   "give the CLIP_MODEL_NAME the checkpoint was trained with") from e
        logger.info("CLIP %s: loaded %d tensors (%s weights) from %s (%s layout)", model_name, len(state),
                    "EMA-teacher" if use_teacher else "fine-tuned", weights, layout)
        return model, tokenizer
    return build_clip_model(model_name, weights)


def one_line_load_error(error: Exception) -> str:
    """torch's multi-line ``load_state_dict`` error as one line with counts and a few names."""
    from ..checkpoint import describe_keys

    text = str(error)
    parts = []
    for label, pattern in (("missing", r'Missing key\(s\) in state_dict: ([^\n]*)'),
                           ("unexpected", r'Unexpected key\(s\) in state_dict: ([^\n]*)')):
        m = re.search(pattern, text)
        if m:
            keys = re.findall(r'"([^"]+)"', m.group(1))
            parts.append(f"{describe_keys(keys)} {label}")
    shapes = re.findall(r"size mismatch for ([^:]+):", text)
    if shapes:
        parts.append(f"{describe_keys(shapes, 'shapes')} differ")
    return "; ".join(parts) if parts else " ".join(text.split())[:300]


def load_clip_strictly(model_name: str, weights: str, use_teacher: bool) -> nn.Module:
    """The exported CLIP, loaded strictly into the named open_clip architecture (fp32)."""
    from ..clip.build import build_clip_model, weights_loaded_next

    sd = clip_state_dict(load_state_dict_file(weights), use_teacher)
    with weights_loaded_next(weights):
        model, _ = build_clip_model(model_name, "")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ExportError(f"the CLIP in {weights} does not fit the open_clip architecture '{model_name}': "
                          f"{one_line_load_error(e)}",
                          "set --model-name to the CLIP_MODEL_NAME it was trained with") from e
    logger.info("CLIP %s: loaded %d tensors (%s weights) from %s", model_name, len(sd),
                "EMA-teacher" if use_teacher else "fine-tuned", weights)
    return model.eval()
