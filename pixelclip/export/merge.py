"""The fine-tuned image encoder merged into another framework's Detectron2 checkpoint (FC-CLIP, ZegFormer)."""
import logging
import re
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence

import numpy as np

from ..errors import ExportError
from .checkpoint_io import load_state_dict_file, read_checkpoint, save_checkpoint
from .layout import clip_state_dict, load_clip_strictly

logger = logging.getLogger(__name__)

MERGE_PREFIXES = {"fcclip": "backbone.clip_model.", "zegformer": "sem_seg_head.predictor.clip_model."}


def no_clip_in_target_message(weights: str, target: str, prefix: str, model_name: Optional[str] = None,
                               other_prefixes: Sequence[str] = ()) -> str:
    """Why a merge into ``target`` is refused when it holds no ``<prefix>visual.*`` weights, and the route
    that fits such a checkpoint instead (the framework loads its CLIP elsewhere, so there is nothing to
    replace: give it the exported CLIP the way it loads one)."""
    name = model_name or "<its CLIP_MODEL_NAME>"
    head = (f"refusing to merge {weights} into {target}: it holds no '{prefix}visual.*' weights, so there is "
            f"nothing to replace. ")
    if other_prefixes:
        return head + f"It holds image-encoder weights under {list(other_prefixes)}: give that as --prefix."
    if prefix == MERGE_PREFIXES["fcclip"]:
        return head + (
            "Released FC-CLIP checkpoints do not store the frozen CLIP: FC-CLIP builds it from "
            "MODEL.FC_CLIP.CLIP_MODEL_NAME / CLIP_PRETRAINED_WEIGHTS, and MODEL.WEIGHTS leaves it as built. For "
            f"such a checkpoint: python tools/export_clip.py open-clip --weights {weights} --model-name {name} "
            f"--output pixelclip_clip.pt, then run FC-CLIP with MODEL.FC_CLIP.CLIP_MODEL_NAME {name} "
            f"MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS pixelclip_clip.pt MODEL.WEIGHTS {target}. Merging is for "
            "FC-CLIP checkpoints that hold backbone.clip_model.* (saved by your own FC-CLIP training), whose "
            "MODEL.WEIGHTS would overwrite the CLIP that CLIP_PRETRAINED_WEIGHTS loaded.")
    if prefix == MERGE_PREFIXES["zegformer"]:
        return head + (
            "ZegFormer keeps its CLIP in checkpoints only when it runs with MODEL.SEM_SEG_HEAD.CLIP_CLASSIFICATION "
            "True; otherwise it builds the CLIP from MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED. For such a checkpoint: "
            f"python tools/export_clip.py openai --weights {weights} --model-name {name} --output "
            "pixelclip_openai.pt, then run ZegFormer with MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED pixelclip_openai.pt "
            f"MODEL.WEIGHTS {target} (its clip.load takes a file after the change in projects/ZegFormer/README.md).")
    return head + ("The framework loads its CLIP from elsewhere: give it the exported CLIP "
                   "(tools/export_clip.py open-clip or openai) the way it loads one, with this checkpoint as is.")


@dataclass
class MergeReport:
    """Keys a merge replaced, in the target's naming."""

    output: str
    prefix: str
    replaced: List[str] = field(default_factory=list)


def merge_visual_weights(weights: str, target: str, prefix: str, output: str, model_name: Optional[str] = None,
                         use_teacher: bool = False) -> MergeReport:
    """Replace the image-encoder weights inside another Detectron2 checkpoint.

    Every ``visual.*`` tensor of the fine-tuned CLIP goes to ``<prefix>visual.*`` of ``target``
    (keeping the target's dtype); every other entry of ``target`` (its text tower, heads, trainer
    state) is written back unchanged.

    Arguments:
        weights: a PixelCLIP (or release / open_clip) checkpoint.
        target: the checkpoint to merge into (e.g. FC-CLIP's or ZegFormer's ``model_final.pth``).
        prefix: where the CLIP lives in ``target`` (``backbone.clip_model.``,
            ``sem_seg_head.predictor.clip_model.``, or a key of :data:`MERGE_PREFIXES`).
        output: the merged checkpoint (same container format as ``target``).
        model_name: when given, the CLIP is first loaded strictly into this open_clip architecture.
    Raises:
        ExportError: the target holds no ``<prefix>visual.*`` at all (the message names the route that
            fits it: :func:`no_clip_in_target_message`), a visual key absent from the target, a target
            visual key we do not provide, or a shape mismatch (nothing is written then).
    """
    prefix = MERGE_PREFIXES.get(prefix, prefix)
    if prefix and not prefix.endswith("."):
        prefix += "."
    container = read_checkpoint(target)
    if isinstance(container, Mapping) and isinstance(container.get("model"), Mapping):
        target_sd = container["model"]
    elif isinstance(container, Mapping):
        target_sd = container
    else:
        raise ExportError(f"{target} does not hold a state dict")
    if not any(str(k).startswith(prefix + "visual.") for k in target_sd):
        others = sorted({k[:k.index("visual.")] for k in map(str, target_sd)
                         if re.search(r"(^|\.)visual\.(conv1|trunk)\.", k)})
        raise ExportError(no_clip_in_target_message(weights, target, prefix, model_name, others))
    if model_name:
        source = {k: v for k, v in load_clip_strictly(model_name, weights, use_teacher).state_dict().items()}
    else:
        source = clip_state_dict(load_state_dict_file(weights), use_teacher)
    visual = {k: v for k, v in source.items() if k.startswith("visual.")}
    if not visual:
        raise ExportError(f"{weights} holds no image-encoder ('visual.*') weights")
    absent = sorted(prefix + k for k in visual if prefix + k not in target_sd)
    mismatched = [f"{prefix + k}: ours {tuple(v.shape)} vs target {tuple(np.shape(target_sd[prefix + k]))}"
                  for k, v in sorted(visual.items())
                  if prefix + k in target_sd and tuple(v.shape) != tuple(np.shape(target_sd[prefix + k]))]
    untouched = sorted(k for k in target_sd if k.startswith(prefix + "visual.") and k[len(prefix):] not in visual)
    problems = []
    if absent:
        problems.append(f"{len(absent)} image-encoder keys are not in the target (wrong prefix or architecture?), "
                        f"e.g. {absent[:3]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shapes differ, e.g. {mismatched[:3]}")
    if untouched:
        problems.append(f"{len(untouched)} target image-encoder keys have no counterpart, e.g. {untouched[:3]}")
    if problems:
        raise ExportError(f"refusing to merge {weights} into {target} under '{prefix}': " + "; ".join(problems))
    report = MergeReport(output=output, prefix=prefix)
    for k, v in sorted(visual.items()):
        key = prefix + k
        old = target_sd[key]
        if isinstance(old, np.ndarray):
            target_sd[key] = v.detach().cpu().numpy().astype(old.dtype)
        else:
            target_sd[key] = v.detach().to(dtype=old.dtype).clone()
        report.replaced.append(key)
    save_checkpoint(container, output, as_pickle=target.endswith(".pkl"))
    for key in report.replaced:
        logger.info("replaced %s", key)
    logger.info("Merged %d image-encoder tensors into %s under '%s' -> %s", len(report.replaced), target, prefix, output)
    return report
