"""The light cost-volume decoder used only during training (PixelCLIP, Sec. 3.2)."""
import logging
from typing import Sequence

import torch
from detectron2.config import configurable
from torch import nn

logger = logging.getLogger(__name__)

# Sequential indices of the conv3×3-GN-ReLU blocks in CostVolumeDecoder.layers
_NORMED_BLOCKS = (2, 3, 5, 6)


def _conv_gn_relu(channels: int, groups: int) -> nn.Sequential:
    """conv3×3-GN-ReLU; ``groups`` 0 means one group per 16 channels (the release's choice). The convolution
    has no bias, as the release's (its ``DoubleConv``)."""
    groups = groups or max(channels // 16, 1)
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.GroupNorm(groups, channels),
                         nn.ReLU(inplace=True))


class CostVolumeDecoder(nn.Module):
    """Upsamples each prompt's cosine map independently (as B·K one-channel images).

    conv3×3 1→c1, transposed conv ×2 →c1, (conv3×3-GN-ReLU)×2, transposed conv ×2 →c2,
    (conv3×3-GN-ReLU)×2, conv3×3 →1. Input B×K×h×w cost volume, output B×K×4h×4w logits.
    The convolutions before a GroupNorm have no bias (the release's ConvHead); checkpoints written before
    that was the default hold such biases: see :meth:`_load_from_state_dict`.
    """

    @configurable
    def __init__(self, *, channels: Sequence[int] = (64, 32), norm_groups: int = 0):
        super().__init__()
        c1, c2 = channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ConvTranspose2d(c1, c1, kernel_size=2, stride=2),
            _conv_gn_relu(c1, norm_groups),
            _conv_gn_relu(c1, norm_groups),
            nn.ConvTranspose2d(c1, c2, kernel_size=2, stride=2),
            _conv_gn_relu(c2, norm_groups),
            _conv_gn_relu(c2, norm_groups),
            nn.Conv2d(c2, 1, 3, padding=1),
        )

    @classmethod
    def from_config(cls, cfg):
        return {"channels": cfg.MODEL.PIXELCLIP.DECODER_CHANNELS, "norm_groups": cfg.MODEL.PIXELCLIP.DECODER_NORM_GROUPS}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Older checkpoints have a bias on the convolutions before each GroupNorm; they are dropped.

        All zero (e.g. imported from the release): nothing changes. Non-zero (trained with them): the decoder
        computes something else from now on; it is used in training only, so inference and export are
        unaffected, and resumed training goes on without those biases (a warning says so)."""
        biases = [f"{prefix}layers.{i}.0.bias" for i in _NORMED_BLOCKS]
        found = {k: state_dict.pop(k) for k in biases if k in state_dict}
        nonzero = [k for k, v in found.items() if torch.count_nonzero(v)]
        if nonzero:
            logger.warning("checkpoint decoder: dropped non-zero biases of the convolutions before GroupNorm (%s); "
                           "this decoder has none (as the release's), so it now differs from the checkpoint's. "
                           "The decoder is used in training only: inference and export are unaffected.",
                           ", ".join(nonzero))
        elif found:
            logger.warning("checkpoint decoder: dropped the all-zero biases of the convolutions before GroupNorm "
                           "(this decoder has none; the result is the same)")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        """cost B×K×h×w -> logits B×K×4h×4w."""
        b, k, h, w = cost.shape
        out = self.layers(cost.reshape(b * k, 1, h, w))
        return out.reshape(b, k, out.shape[-2], out.shape[-1])
