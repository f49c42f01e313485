"""Checkpoints of the authors' release mapped onto ``PixelCLIP``'s layout, every key accounted for."""
import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from ..errors import ExportError
from .checkpoint_io import load_state_dict_file, to_tensors
from .layout import (
    CLIP_PREFIX,
    DECODER_PREFIX,
    PROMPTS_KEY,
    RELEASE_CLIP_PREFIX,
    RELEASE_HEAD_PREFIX,
    RELEASE_PROMPTS_KEY,
    RELEASE_TEACHER_PREFIX,
    TEACHER_PREFIX,
)

logger = logging.getLogger(__name__)

# The release's ConvHead (conv0, up1, conv1 = DoubleConv, up2, conv2, proj) -> CostVolumeDecoder.layers
_RELEASE_HEAD_MAP = (
    (r"conv0\.", "0."), (r"up1\.", "1."),
    (r"conv1\.double_conv\.0\.", "2.0."), (r"conv1\.double_conv\.1\.", "2.1."),
    (r"conv1\.double_conv\.3\.", "3.0."), (r"conv1\.double_conv\.4\.", "3.1."),
    (r"up2\.", "4."),
    (r"conv2\.double_conv\.0\.", "5.0."), (r"conv2\.double_conv\.1\.", "5.1."),
    (r"conv2\.double_conv\.3\.", "6.0."), (r"conv2\.double_conv\.4\.", "6.1."),
    (r"proj\.", "7."),
)


@dataclass
class ImportReport:
    """Where each key of a release checkpoint went."""

    placed: Dict[str, str] = field(default_factory=dict)  # release key -> our key
    ignored: Dict[str, str] = field(default_factory=dict)  # release key -> why it is not needed
    unplaced: List[str] = field(default_factory=list)  # release keys with no place in our model
    missing: List[str] = field(default_factory=list)  # our keys the release did not fill


def _release_head_key(rest: str) -> Optional[str]:
    for pattern, target in _RELEASE_HEAD_MAP:
        m = re.match(pattern, rest)
        if m:
            return DECODER_PREFIX + target + rest[m.end():]
    return None


def convert_release_state_dict(release: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], ImportReport]:
    """Map a release state dict onto ``PixelCLIP``'s key layout (names only; see
    :func:`load_release_checkpoint` for the check against a model)."""
    out: Dict[str, torch.Tensor] = {}
    report = ImportReport()
    for key, value in release.items():
        ours = None
        if key.startswith(RELEASE_CLIP_PREFIX):
            ours = CLIP_PREFIX + key[len(RELEASE_CLIP_PREFIX):]
        elif key == RELEASE_PROMPTS_KEY:
            ours = PROMPTS_KEY
        elif key.startswith(RELEASE_TEACHER_PREFIX + "visual."):
            ours = TEACHER_PREFIX + key[len(RELEASE_TEACHER_PREFIX + "visual."):]
        elif key.startswith(RELEASE_TEACHER_PREFIX):
            report.ignored[key] = "text-tower copy in the release's teacher (the teacher is an image encoder here)"
        elif key.startswith(RELEASE_HEAD_PREFIX):
            ours = _release_head_key(key[len(RELEASE_HEAD_PREFIX):])
        if ours is not None:
            out[ours] = value
            report.placed[key] = ours
        elif key not in report.ignored:
            report.unplaced.append(key)
    return out, report


def load_release_checkpoint(model: nn.Module, checkpoint) -> ImportReport:
    """Load a release checkpoint (path or state dict) into a ``PixelCLIP`` model.

    Every release key goes to its place or is listed (``unplaced`` / ``ignored``); our keys left
    unfilled are listed in ``missing``. Shapes must match.

    Raises:
        ExportError: shape mismatches, or image-encoder keys of ours that the release lacks.
    """
    release = load_state_dict_file(checkpoint) if isinstance(checkpoint, str) else to_tensors(checkpoint)
    converted, report = convert_release_state_dict(release)
    ours = model.state_dict()
    mismatched = [f"{k}: release {tuple(v.shape)} vs ours {tuple(ours[k].shape)}"
                  for k, v in converted.items() if k in ours and tuple(v.shape) != tuple(ours[k].shape)]
    if mismatched:
        raise ExportError("release checkpoint does not fit this model (check CLIP_MODEL_NAME, NUM_PROMPTS, "
                          f"PROMPT_LENGTH): {mismatched[:5]}")
    source_of = {o: r for r, o in report.placed.items()}
    for k in sorted(k for k in converted if k not in ours):  # e.g. a teacher in the release, USE_MOMENTUM False here
        release_key = source_of.get(k, k)
        report.placed.pop(release_key, None)
        report.unplaced.append(release_key)
        converted.pop(k)
    report.missing = sorted(k for k in ours if k not in converted)
    visual_missing = [k for k in report.missing if k.startswith(CLIP_PREFIX + "visual.")]
    if visual_missing:
        raise ExportError(f"the release checkpoint lacks {len(visual_missing)} image-encoder keys, "
                          f"e.g. {visual_missing[:3]}")
    model.load_state_dict(converted, strict=False)
    for key in report.unplaced:
        logger.warning("release key with no place in this model: %s", key)
    logger.info("Imported release checkpoint: %d keys placed, %d ignored, %d unplaced, %d of ours not in it",
                len(report.placed), len(report.ignored), len(report.unplaced), len(report.missing))
    return report
