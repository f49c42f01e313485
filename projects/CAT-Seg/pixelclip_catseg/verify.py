"""Does a CAT-Seg model really hold the exported CLIP? Tensor by tensor, after CAT-Seg loaded it.

Detectron2 loads ``MODEL.WEIGHTS`` non-strictly: a key the model does not have is only logged as
"unexpected", a tensor whose shape differs is skipped with a warning, and the CLIP keeps the OpenAI weights
``clip.load`` gave it. Nothing stops; the run then trains CAT-Seg from the wrong encoder. This module
compares the model's state dict (or a checkpoint saved from it) with the export and raises
:class:`CATSegWeightsError` listing every export key the model lacks, every CLIP key of the model the
export lacks, every shape that differs and every tensor whose values differ.

Pure torch (registers nothing): call :func:`assert_model_holds_export` inside CAT-Seg's ``train_net.py``
right after its checkpointer loaded ``MODEL.WEIGHTS`` (``projects/CAT-Seg/README.md``), or run
``projects/CAT-Seg/verify_catseg.py`` on a state dict saved from the model.
"""
from dataclasses import dataclass, field
from typing import List, Mapping, Union

import torch
from torch import nn

from .layout import CATSEG_CLIP_PREFIX, strip_prefix


class CATSegWeightsError(RuntimeError):
    """The model does not hold the exported CLIP."""


@dataclass
class VerifyReport:
    """Outcome of :func:`compare_with_export`; ``ok`` when every list is empty."""

    prefix: str
    checked: int = 0
    not_in_model: List[str] = field(default_factory=list)  # export keys the model lacks
    not_in_export: List[str] = field(default_factory=list)  # model CLIP keys the export lacks
    shapes: List[str] = field(default_factory=list)  # "key: model (..) vs export (..)"
    values: List[str] = field(default_factory=list)  # "key: max |diff| x"
    max_abs_diff: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.not_in_model or self.not_in_export or self.shapes or self.values)

    def problems(self, limit: int = 20) -> List[str]:
        lines = []
        for label, keys in (("export keys the model lacks (Detectron2 ignored them)", self.not_in_model),
                            ("model CLIP keys the export lacks (left as CAT-Seg built them)", self.not_in_export),
                            ("shapes differ (Detectron2 skipped them)", self.shapes),
                            ("values differ", self.values)):
            if keys:
                shown = keys[:limit] + ([f"... and {len(keys) - limit} more"] if len(keys) > limit else [])
                lines.append(f"{len(keys)} {label}:\n  " + "\n  ".join(shown))
        return lines


def _export_state_dict(export: Union[str, Mapping]) -> Mapping[str, torch.Tensor]:
    if isinstance(export, str):
        try:
            export = torch.load(export, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CATSegWeightsError(f"export file not found: {export}") from None
    if isinstance(export.get("model"), Mapping):
        export = export["model"]
    return {k: v for k, v in export.items() if isinstance(v, torch.Tensor)}


def compare_with_export(model_state: Mapping[str, torch.Tensor], export: Union[str, Mapping],
                        prefix: str = CATSEG_CLIP_PREFIX, atol: float = 0.0) -> VerifyReport:
    """Compare the CLIP under ``prefix`` of a CAT-Seg state dict with an export.

    Arguments:
        model_state: ``model.state_dict()`` of CAT-Seg after loading (``module.`` prefixes allowed), or a
            checkpoint's ``"model"`` dict.
        export: the file :func:`pixelclip_catseg.export.export_catseg` wrote, or its state dict.
        atol: largest |difference| accepted per element, after casting the export to the model's dtype
            (0: CAT-Seg keeps its CLIP in fp32, as the export; a copy is exact).
    """
    ours = strip_prefix(_export_state_dict(export), prefix)
    if not ours:
        raise CATSegWeightsError(f"the export holds no tensor under '{prefix}'")
    theirs = strip_prefix(model_state, prefix)
    report = VerifyReport(prefix=prefix)
    report.not_in_model = sorted(prefix + k for k in ours if k not in theirs)
    report.not_in_export = sorted(prefix + k for k in theirs if k not in ours)
    for key in sorted(set(ours) & set(theirs)):
        a, b = theirs[key].detach().cpu(), ours[key]
        if tuple(a.shape) != tuple(b.shape):
            report.shapes.append(f"{prefix + key}: model {tuple(a.shape)} vs export {tuple(b.shape)}")
            continue
        report.checked += 1
        diff = (a.double() - b.to(a.dtype).double()).abs().max().item() if a.numel() else 0.0
        report.max_abs_diff = max(report.max_abs_diff, diff)
        if not diff <= atol:  # NaN fails too
            report.values.append(f"{prefix + key}: max |diff| {diff:.3g}")
    return report


def assert_model_holds_export(model: Union[nn.Module, Mapping[str, torch.Tensor]], export: Union[str, Mapping],
                              prefix: str = CATSEG_CLIP_PREFIX, atol: float = 0.0) -> VerifyReport:
    """:func:`compare_with_export` on ``model`` (a module or its state dict); raises
    :class:`CATSegWeightsError` naming every problem, returns the report when the model holds the export."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    report = compare_with_export(state, export, prefix, atol)
    if not report.ok:
        name = export if isinstance(export, str) else "the export"
        raise CATSegWeightsError(f"CAT-Seg's CLIP does not hold {name} ({report.checked} tensors compared):\n"
                                 + "\n".join(report.problems()))
    return report
