"""The exported image encoder merged into a SAN checkpoint (SAN's released ``san_vit_b_16.pth``,
``san_vit_large_14.pth``, or one of your own SAN trainings)."""
from dataclasses import dataclass, field
from typing import Dict, List, MutableMapping

import torch

from .errors import SanWeightsError
from .layout import EXTRACTOR, REC_HEAD, SAN_POSITIONAL, TEXT, clip_depth, remap_text, remap_visual, san_block_counts
from .verify import POSITIONAL_CHOICES, SAN_REC_EXTRAS, max_abs_difference


@dataclass
class SanMergeReport:
    """What :func:`merge_into_san` did: keys replaced and kept (SAN's names), the split index, and how
    far the export's text tower is from the checkpoint's (0.0 when both come from the same CLIP)."""

    first_rec_layer: int
    replaced: List[str] = field(default_factory=list)
    kept: Dict[str, str] = field(default_factory=dict)
    text_max_abs_difference: float = 0.0


def merge_into_san(san_sd: MutableMapping[str, torch.Tensor], clip_sd: Dict[str, torch.Tensor],
                   positional: str = "san", allow_other_text: bool = False) -> SanMergeReport:
    """Put the exported image encoder into a SAN state dict, in place.

    Each ``visual.*`` tensor of ``clip_sd`` goes to its SAN name (:func:`pixelclip_san.layout.san_visual_key`;
    SAN's split index is read from the checkpoint's blocks), cast to the dtype the checkpoint stores.
    ``positional="san"`` keeps SAN's ``clip_visual_extractor.positional_embedding`` (SAN trains it; its side
    adapter was trained against it); ``"pixelclip"`` takes the export's. Everything else (side adapter,
    ``ov_classifier``'s text tower and background embedding) stays.

    Nothing is changed unless everything fits. Raises :class:`SanWeightsError` when the checkpoint holds
    no SAN CLIP, the depths differ, a key has no place or another shape, a SAN CLIP key has no export
    tensor, or (unless ``allow_other_text``) the text towers differ: PixelCLIP never trains the text
    tower, so a different one means the SAN checkpoint was trained on another CLIP than the one the
    encoder was fine-tuned from (e.g. ViT-L/14 against SAN-L's ViT-L/14@336).
    """
    if positional not in POSITIONAL_CHOICES:
        raise SanWeightsError(f"positional must be one of {POSITIONAL_CHOICES}, not {positional!r}")
    k, r = san_block_counts(san_sd)
    if k == 0 or r == 0:
        raise SanWeightsError(
            "the target holds no SAN CLIP ('clip_visual_extractor.resblocks.*' and 'clip_rec_head.resblocks.*'), "
            "so there is nothing to replace",
            "for a SAN checkpoint without its CLIP, build SAN from the export instead "
            "(MODEL.SAN.CLIP_MODEL_NAME / CLIP_PRETRAINED_NAME, projects/SAN/README.md step 2a)")
    depth = clip_depth(clip_sd)
    if k + r != depth:
        raise SanWeightsError(f"the SAN checkpoint splits a {k + r}-block CLIP ({k} + {r}), the export has {depth} "
                              "blocks", "merge an export of the CLIP architecture the SAN checkpoint was trained with")
    visual = remap_visual(clip_sd, k)
    if positional == "san":
        visual.pop(SAN_POSITIONAL)
    problems = []
    absent = sorted(key for key in visual if key not in san_sd)
    if absent:
        problems.append(f"{len(absent)} keys are not in the SAN checkpoint, e.g. {absent[:3]}")
    shapes = [f"{key}: export {tuple(v.shape)} vs SAN {tuple(san_sd[key].shape)}"
              for key, v in sorted(visual.items()) if key in san_sd and tuple(v.shape) != tuple(san_sd[key].shape)]
    if shapes:
        problems.append(f"{len(shapes)} shapes differ, e.g. {shapes[:3]}")
    covered = set(visual) | {SAN_POSITIONAL} | set(SAN_REC_EXTRAS)
    orphans = sorted(key for key in san_sd if key.startswith((EXTRACTOR, REC_HEAD)) and key not in covered)
    if orphans:
        problems.append(f"{len(orphans)} SAN image-encoder keys have no export tensor, e.g. {orphans[:3]}")
    text_difference = 0.0
    text = remap_text(clip_sd)
    text_absent = sorted(key for key in text if key not in san_sd)
    text_shapes = [key for key, v in text.items() if key in san_sd and tuple(v.shape) != tuple(san_sd[key].shape)]
    if text_absent or text_shapes:
        problems.append(f"the text towers differ in layout ({len(text_absent)} export keys not under '{TEXT}', "
                        f"e.g. {text_absent[:2]}; {len(text_shapes)} shapes differ, e.g. {text_shapes[:2]}): "
                        "another CLIP architecture")
    else:
        text_difference = max((max_abs_difference(v.to(san_sd[key].dtype), san_sd[key]) for key, v in text.items()),
                              default=0.0)
        if text_difference > 0 and not allow_other_text:
            problems.append(f"the text towers differ (max |export - SAN| = {text_difference:.3g}): the SAN checkpoint "
                            "was trained on another CLIP than the one this encoder was fine-tuned from "
                            "(--allow-other-text merges anyway)")
    if problems:
        raise SanWeightsError("refusing to merge: " + "; ".join(problems))
    report = SanMergeReport(first_rec_layer=k, text_max_abs_difference=text_difference)
    for key, value in sorted(visual.items()):
        san_sd[key] = value.detach().to(dtype=san_sd[key].dtype).clone()
        report.replaced.append(key)
    if positional == "san":
        report.kept[SAN_POSITIONAL] = "SAN's own positional embedding (trained by SAN)"
    return report
