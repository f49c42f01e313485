"""Does a SAN model (or checkpoint) hold the exported CLIP? Tensor by tensor, loudly.

SAN builds its CLIP and Detectron2 then loads ``MODEL.WEIGHTS`` over the model non-strictly: a key of
another name, or of another shape, is skipped with a log line and the model keeps what it was built
with. Nothing stops a run whose backbone is not the one meant. :func:`check_san_holds` compares every
image-encoder tensor SAN should hold with the exported one, after loading.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import torch

from .errors import SanWeightsError
from .layout import (EXTRACTOR, REC_HEAD, SAN_POSITIONAL, SAN_TEXT_EXTRAS, TEXT, clip_depth, remap_text, remap_visual,
                     san_block_counts)

POSITIONAL_CHOICES = ("san", "pixelclip")
# A parameter of SAN's recognition head that is not CLIP's (SOS_TOKEN_FORMAT learnable_token / pos_embedding).
SAN_REC_EXTRAS = (REC_HEAD + "sos_token",)


@dataclass
class HoldReport:
    """What :func:`check_san_holds` found; ``ok`` when nothing is missing, misshapen or different."""

    first_rec_layer: int
    equal: List[str] = field(default_factory=list)
    fp16_rounded: List[str] = field(default_factory=list)  # equal to the export rounded to fp16 (if allowed)
    skipped: Dict[str, str] = field(default_factory=dict)  # key -> why it was not compared
    missing: List[str] = field(default_factory=list)  # SAN keys the model / checkpoint lacks
    unexpected: List[str] = field(default_factory=list)  # SAN CLIP keys the export has no tensor for
    shapes: List[str] = field(default_factory=list)  # "key: export (..) vs SAN (..)"
    values: List[str] = field(default_factory=list)  # "key: max |export - SAN| = .."
    activation: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shapes or self.values or self.activation)

    def problems(self) -> List[str]:
        return ([f"missing: {k}" for k in self.missing] + [f"no export tensor for: {k}" for k in self.unexpected]
                + [f"shape differs: {s}" for s in self.shapes] + [f"value differs: {s}" for s in self.values]
                + [f"activation: {s}" for s in self.activation])

    def summary(self) -> str:
        rounded = f" ({len(self.fp16_rounded)} of them as the export rounded to fp16)" if self.fp16_rounded else ""
        return (f"{len(self.equal)} equal{rounded}, {len(self.skipped)} skipped, {len(self.missing)} missing, "
                f"{len(self.unexpected)} without export tensor, {len(self.shapes)} of other shape, "
                f"{len(self.values)} of other value, {len(self.activation)} activation problems")

    def raise_if_bad(self, where: str) -> None:
        """Raise :class:`SanWeightsError` naming every problem (first ten in the message)."""
        if self.ok:
            return
        problems = self.problems()
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems) - 10} more)" if len(problems) > 10 else "")
        raise SanWeightsError(f"{where} does not hold the exported CLIP ({self.summary()}): {shown}",
                              "merge with projects/SAN/merge_san.py, or build SAN from the export "
                              "(projects/SAN/README.md), and check the activation")


def max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| in float64 (0.0 for empty tensors)."""
    if a.numel() == 0:
        return 0.0
    return float((a.detach().cpu().double() - b.detach().cpu().double()).abs().max())


def expected_san_tensors(clip_sd: Mapping[str, torch.Tensor], first_rec_layer: int,
                         text: bool = True) -> Dict[str, torch.Tensor]:
    """The CLIP tensors a SAN model built from / merged with ``clip_sd`` must hold, under SAN's names."""
    expected = remap_visual(clip_sd, first_rec_layer)
    if text:
        expected.update(remap_text(clip_sd))
    return expected


def check_san_holds(san_sd: Mapping[str, torch.Tensor], clip_sd: Mapping[str, torch.Tensor],
                    positional: str = "san", text: bool = True, model=None,
                    activation: Optional[str] = "QuickGELU", allow_fp16_rounding: bool = False) -> HoldReport:
    """Compare SAN's CLIP tensors with an exported open_clip ``CLIP`` state dict.

    Arguments:
        san_sd: SAN's ``model.state_dict()`` after loading, or a SAN checkpoint's state dict.
        clip_sd: the exported CLIP (``visual.*`` and the text tower).
        positional: ``san``: ``clip_visual_extractor.positional_embedding`` is SAN's own (learned by SAN,
            kept by the merge) and is not compared; ``pixelclip``: it must be the export's.
        text: also compare the text tower (``ov_classifier.*``; PixelCLIP never trains it, so it equals
            the CLIP SAN was trained with when both come from the same CLIP).
        model: the SAN ``nn.Module``, to check the activation of its CLIP blocks.
        activation: the class name every CLIP MLP activation must have (``QuickGELU`` for OpenAI-based
            CLIPs, ``GELU`` for the others; ``None``: not checked).
    Each tensor must be equal after casting the export to SAN's dtype (the merge casts that way).
    """
    if positional not in POSITIONAL_CHOICES:
        raise SanWeightsError(f"positional must be one of {POSITIONAL_CHOICES}, not {positional!r}")
    k, r = san_block_counts(san_sd)
    depth = clip_depth(clip_sd)
    if k == 0:
        raise SanWeightsError("the SAN state dict has no 'clip_visual_extractor.resblocks.*': not a SAN model "
                              "(or its CLIP is not stored)")
    if k + r != depth:
        raise SanWeightsError(f"SAN holds {k} + {r} CLIP blocks (clip_visual_extractor + clip_rec_head), the "
                              f"export {depth}", "the export and the SAN model are different CLIP architectures")
    report = HoldReport(first_rec_layer=k)
    expected = expected_san_tensors(clip_sd, k, text)
    if positional == "san":
        expected.pop(SAN_POSITIONAL, None)
        report.skipped[SAN_POSITIONAL] = "SAN's own (learned by SAN, kept by the merge)"
    for key, ours in sorted(expected.items()):
        theirs = san_sd.get(key)
        if theirs is None:
            report.missing.append(key)
        elif tuple(theirs.shape) != tuple(ours.shape):
            report.shapes.append(f"{key}: export {tuple(ours.shape)} vs SAN {tuple(theirs.shape)}")
        elif torch.equal(ours.detach().cpu().to(theirs.dtype), theirs.detach().cpu()):
            report.equal.append(key)
        elif (allow_fp16_rounding and ours.is_floating_point()
              and torch.equal(ours.detach().cpu().half().to(theirs.dtype), theirs.detach().cpu())):
            report.equal.append(key)
            report.fp16_rounded.append(key)
        else:
            report.values.append(f"{key}: max |export - SAN| = {max_abs_difference(ours, theirs):.3g}")
    covered = set(expected) | set(report.skipped) | set(SAN_REC_EXTRAS) | set(SAN_TEXT_EXTRAS)
    prefixes = (EXTRACTOR, REC_HEAD) + ((TEXT,) if text else ())
    report.unexpected = sorted(k for k in san_sd if k.startswith(prefixes) and k not in covered)
    if model is not None and activation:
        from .quickgelu import clip_activations

        found = clip_activations(model)
        if found != [activation]:
            report.activation.append(f"SAN's CLIP blocks use {found or 'no open_clip MLP'}, the export was trained "
                                     f"with {activation} (see QuickGELU in projects/SAN/README.md)")
    return report
