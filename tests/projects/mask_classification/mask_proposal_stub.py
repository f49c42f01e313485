"""A stand-in Detectron2 mask model for the zero-shot mask classifier's tests (MASK_SOURCE model).

Imported by its dotted name only (``tests.projects.mask_classification.mask_proposal_stub``), so it
registers once.
"""
import torch
from detectron2.config import CfgNode as CN
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Instances


def add_stub_proposal_config(cfg):
    """A proposal framework's config function (MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.CONFIG_FUNCS)."""
    cfg.MODEL.STUB_PROPOSALS = CN()
    cfg.MODEL.STUB_PROPOSALS.CLASSES = (5, 9)


@META_ARCH_REGISTRY.register()
class MaskClassifierTestProposals(torch.nn.Module):
    """A stand-in D2 mask model: two instances (left / right half) with class scores."""

    @configurable
    def __init__(self, *, classes=(5, 9)):
        super().__init__()
        self.classes = list(classes)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    @classmethod
    def from_config(cls, cfg):
        return {"classes": cfg.MODEL.STUB_PROPOSALS.CLASSES}

    def forward(self, batched_inputs):
        outs = []
        for x in batched_inputs:
            h, w = x["height"], x["width"]
            inst = Instances((h, w))
            m = torch.zeros(2, h, w, dtype=torch.bool)
            m[0, :, : w // 2] = True
            m[1, :, w // 2:] = True
            inst.pred_masks, inst.scores, inst.pred_classes = m, torch.tensor([0.99, 0.99]), torch.tensor(self.classes)
            outs.append({"instances": inst})
        return outs
