"""The momentum (EMA) teacher: a slowly moving copy of the image encoder that decides the clustering."""
import copy

import torch
from torch import nn

from ..clip.build import freeze
from ..clip.dense import dense_features


class MomentumEncoder(nn.Module):
    """EMA copy of an image tower: ``ξ <- m·ξ + (1-m)·θ`` (PixelCLIP, Sec. 3.3; MoCo-style).

    Only parameters that train in the student move; frozen ones stay identical. The copy never
    receives gradients and always runs in eval mode; it is saved in checkpoints with the model.
    """

    def __init__(self, encoder: nn.Module, momentum: float = 0.999):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"MODEL.PIXELCLIP.MOMENTUM must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.encoder = freeze(copy.deepcopy(encoder)).eval()

    def train(self, mode: bool = True):
        super().train(False)  # the teacher is always in eval mode
        return self

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """One EMA step towards ``student`` (same architecture as the teacher)."""
        teacher_params = dict(self.encoder.named_parameters())
        for name, param in student.named_parameters():
            if param.requires_grad:
                teacher_params[name].mul_(self.momentum).add_(param.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, dense_mode: str = "value") -> torch.Tensor:
        """B×3×H×W -> teacher dense features B×C×h×w; ``dense_mode``: the student's MODEL.PIXELCLIP.DENSE_MODE."""
        return dense_features(self.encoder, images, dense_mode)
