"""PixelCLIP's fine-tuned CLIP as a starting ``MODEL.WEIGHTS`` for CAT-Seg.

The file is a Detectron2 checkpoint ``{"model": state dict}`` holding the whole CLIP (PixelCLIP's
fine-tuned image tower, the original text tower) under ``sem_seg_head.predictor.clip_model.`` in
CAT-Seg's split-attention names (:mod:`pixelclip_catseg.layout`), fp32 like CAT-Seg's CLIP
(``CATSegPredictor`` calls ``.float()``). CAT-Seg's other modules are not in it: they start from their
initialisation, as when CAT-Seg trains from OpenAI's CLIP.
"""
import logging
import os
from typing import Dict, Mapping, Optional

import torch

from pixelclip.errors import PixelCLIPError
from pixelclip.export import save_checkpoint
from pixelclip.export.layout import load_clip_strictly

from .layout import CATSEG_CLIP_PREFIX, CATSegCLIP, CATSegLayoutError, add_prefix, catseg_clip, fit_problems, \
    merge_attention, split_attention, vit_sizes

logger = logging.getLogger(__name__)


class CATSegExportError(PixelCLIPError):
    """A checkpoint that cannot become CAT-Seg weights."""


def uses_quick_gelu(model_name: str) -> bool:
    """Whether the open_clip architecture ``model_name`` runs QuickGELU (``"quick_gelu": true`` in its config)."""
    import open_clip

    config = open_clip.get_model_config(model_name)
    if config is None:
        raise CATSegExportError(f"open_clip has no architecture {model_name!r}",
                                "give the CLIP_MODEL_NAME the PixelCLIP checkpoint was trained with")
    return bool(config.get("quick_gelu", False))


def resize_positions(pos: torch.Tensor, rows: int) -> torch.Tensor:
    """A ViT position embedding (1 + g²)×D resized to ``rows`` = 1 + G² rows with PixelCLIP's bicubic
    interpolation (CAT-Seg's dense path uses the same call), CLS row kept: what PixelCLIP computed on the fly
    at G×G patches."""
    from pixelclip.clip.dense import interpolate_positional_embedding

    old, new = round((pos.shape[0] - 1) ** 0.5), round((rows - 1) ** 0.5)
    if old * old + 1 != pos.shape[0] or new * new + 1 != rows:
        raise CATSegExportError(f"position embeddings of {pos.shape[0]} -> {rows} rows are not square grids + CLS")
    with torch.no_grad():
        return interpolate_positional_embedding(pos, (old, old), (new, new)).contiguous()


def catseg_state_dict(clip_sd: Mapping[str, torch.Tensor], clip: Optional[CATSegCLIP] = None,
                      resize: bool = False) -> Dict[str, torch.Tensor]:
    """An open_clip-layout CLIP state dict (no prefix) in CAT-Seg's layout under its predictor prefix.

    Arguments:
        clip: the CAT-Seg CLIP it must fit (None: no size check, e.g. a tiny test model).
        resize: resize ``visual.positional_embedding`` to the rows CAT-Seg's CLIP has when only they differ.
    Raises:
        CATSegExportError: the CLIP does not fit ``clip`` (the message says which sizes differ).
    """
    sd = {k: v.detach().float().clone().contiguous() for k, v in clip_sd.items() if v.is_floating_point()}
    if clip is not None:
        try:
            problems = fit_problems(sd, clip)
        except CATSegLayoutError as e:
            raise CATSegExportError(str(e)) from e
        sizes = vit_sizes(sd)
        if problems and resize and problems.startswith("positions") and ";" not in problems:
            logger.info("resizing visual.positional_embedding %d -> %d rows for CAT-Seg's %s",
                        sizes["positions"], clip.positions, clip.name)
            sd["visual.positional_embedding"] = resize_positions(sd["visual.positional_embedding"], clip.positions)
        elif problems:
            hint = ("pass --resize-positions to store the position embedding resized to CAT-Seg's grid (what "
                    "PixelCLIP computed on the fly at that grid), or train with " + clip.pixelclip_config
                    if problems.startswith("positions") and ";" not in problems else
                    f"export a PixelCLIP checkpoint of {clip.open_clip_name} ({clip.pixelclip_config}) or set "
                    "--clip to the CAT-Seg CLIP_PRETRAINED it fits")
            raise CATSegExportError(
                f"this CLIP does not fit CAT-Seg's {clip.name}: {problems}; Detectron2 would skip every tensor of "
                "another shape and keep OpenAI's", hint)
    split = split_attention(sd)
    back = merge_attention(split)
    if back.keys() != sd.keys() or not all(torch.equal(back[k], sd[k]) for k in sd):  # the split is lossless
        raise CATSegExportError("splitting the attention projections did not round-trip (a bug: please report it)")
    return dict(add_prefix(split, CATSEG_CLIP_PREFIX))


def export_catseg(weights: str, output: str, clip: str = "ViT-B/16", model_name: str = "",
                  use_teacher: bool = False, resize: bool = False, allow_gelu: bool = False) -> Dict[str, object]:
    """Write ``output``: a CAT-Seg ``MODEL.WEIGHTS`` holding the CLIP of ``weights``.

    Arguments:
        weights: a PixelCLIP checkpoint (or the authors' release, or an open_clip state dict).
        clip: CAT-Seg's ``MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED`` the file is for, or ``"custom"`` (no size check).
        model_name: PixelCLIP's ``CLIP_MODEL_NAME`` of ``weights`` (default: the one that fits ``clip``).
        use_teacher: export the EMA teacher's image encoder.
        resize: see :func:`catseg_state_dict`.
        allow_gelu: accept a GELU architecture (CAT-Seg's CLIP always runs QuickGELU).
    Returns:
        a report (the CLI prints it and writes it to ``<output>.report.json``).
    """
    spec = None if clip == "custom" else catseg_clip(clip)
    name = model_name or (spec.open_clip_name if spec else "")
    if not name:
        raise CATSegExportError("--clip custom needs --model-name (the open_clip architecture of the checkpoint)")
    if not uses_quick_gelu(name) and not allow_gelu:
        raise CATSegExportError(
            f"{name!r} runs GELU, but CAT-Seg's OpenAI-layout CLIP (third_party/model_vpt.py) always runs QuickGELU: "
            "the exported weights would compute another function there than the one PixelCLIP fine-tuned",
            "train PixelCLIP with the -quickgelu architecture (configs/pixelclip_vitb.yaml does), or pass "
            "--allow-gelu if this checkpoint was really trained with QuickGELU under another name")
    model = load_clip_strictly(name, weights, use_teacher)
    sd = catseg_state_dict(model.state_dict(), spec, resize)
    save_checkpoint({"model": sd, "__source__": os.path.abspath(weights)}, output)
    blocks = sum(k.endswith("attn.q_proj_weight") for k in sd)
    report = {"output": output, "clip_pretrained": clip, "model_name": name,
              "visual": "teacher" if use_teacher else "student", "num_tensors": len(sd),
              "split_attention_blocks": blocks, "prefix": CATSEG_CLIP_PREFIX,
              "positions": int(sd[CATSEG_CLIP_PREFIX + "visual.positional_embedding"].shape[0])}
    logger.info("Wrote CAT-Seg weights %s: %d tensors under '%s' (%d attention blocks split into q/k/v)",
                output, len(sd), CATSEG_CLIP_PREFIX, blocks)
    return report
