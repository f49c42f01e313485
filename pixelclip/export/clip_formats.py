"""The fine-tuned CLIP as an open_clip checkpoint or an OpenAI-layout state dict."""
import logging
from typing import Dict

import torch
from torch import nn

from ..errors import ExportError
from .checkpoint_io import save_checkpoint
from .layout import OPENAI_SCALAR_ENTRIES, load_clip_strictly

logger = logging.getLogger(__name__)


def export_open_clip(weights: str, model_name: str, output: str, use_teacher: bool = False) -> Dict[str, object]:
    """Write the fine-tuned CLIP as an open_clip checkpoint (fp32 state dict).

    Load it with ``open_clip.create_model_and_transforms(model_name, pretrained=output)``.
    Returns a small report (output, model name, visual source, number of tensors)."""
    model = load_clip_strictly(model_name, weights, use_teacher)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(sd, output)
    report = {"output": output, "model_name": model_name, "format": "open_clip",
              "visual": "teacher" if use_teacher else "student", "num_tensors": len(sd)}
    logger.info("Wrote open_clip checkpoint %s (%d tensors, %s image encoder); load it with "
                "open_clip.create_model_and_transforms('%s', pretrained='%s')",
                output, len(sd), report["visual"], model_name, output)
    return report


def openai_state_dict(model: nn.Module, fp16: bool = False) -> Dict[str, torch.Tensor]:
    """An open_clip ViT CLIP as OpenAI's state dict: the same tensors (open_clip's ViT uses OpenAI's
    parameter names: ``visual.conv1``, ``visual.transformer.resblocks.N.attn.in_proj_weight``,
    ``ln_final``, ``text_projection``, ...), ``fp16`` as OpenAI's release stores them, and, as in
    OpenAI's state dicts, three 0-dim int64 entries: ``input_resolution`` (patch size × position grid,
    e.g. 224), ``context_length`` (e.g. 77) and ``vocab_size`` (e.g. 49408). OpenAI's ``build_model``
    deletes these three before its strict load, so a file without them fails there (ZegFormer's copy:
    ``KeyError``)."""
    from ..clip.build import is_vit

    if not is_vit(model.visual):
        raise ExportError(f"the OpenAI layout exists only for ViT towers, not {type(model.visual).__name__} "
                          "(use the open_clip export)")
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if fp16:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    patch, grid = sd["visual.conv1.weight"].shape[-1], round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    sd["input_resolution"] = torch.tensor(int(patch * grid))
    sd["context_length"] = torch.tensor(int(sd["positional_embedding"].shape[0]))
    sd["vocab_size"] = torch.tensor(int(sd["token_embedding.weight"].shape[0]))
    return sd


def export_openai(weights: str, model_name: str, output: str, use_teacher: bool = False, fp16: bool = False,
                  verify: bool = True) -> Dict[str, object]:
    """Write the fine-tuned CLIP ViT as an OpenAI-layout state dict (:func:`openai_state_dict`), what
    OpenAI's ``clip.load(output)`` / ``build_model`` read. With ``verify`` (and widths divisible by 64,
    the head size OpenAI's loader assumes) the file is rebuilt with open_clip's
    ``build_model_from_openai_state_dict``, which loads strictly."""
    from open_clip.model import build_model_from_openai_state_dict

    model = load_clip_strictly(model_name, weights, use_teacher)
    try:
        sd = openai_state_dict(model, fp16)
    except ExportError as e:
        raise ExportError(f"'{model_name}': {e}") from e
    vision_width = sd["visual.conv1.weight"].shape[0]
    text_width = sd["ln_final.weight"].shape[0]
    if verify and vision_width % 64 == 0 and text_width % 64 == 0:
        build_model_from_openai_state_dict(dict(sd), cast_dtype=None)  # raises on any missing/extra key
    elif verify:
        logger.info("skipping the OpenAI-loader check: widths %d/%d are not multiples of 64", vision_width, text_width)
    save_checkpoint(sd, output)
    report = {"output": output, "model_name": model_name, "format": "openai",
              "visual": "teacher" if use_teacher else "student", "num_tensors": len(sd), "fp16": fp16}
    logger.info("Wrote OpenAI-layout CLIP %s (%d tensors, %s; input_resolution %d, context_length %d, vocab_size %d)",
                output, len(sd), "fp16" if fp16 else "fp32", *(int(sd[k]) for k in OPENAI_SCALAR_ENTRIES))
    return report
