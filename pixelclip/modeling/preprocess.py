"""CLIP input preparation shared by the meta-architectures."""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class ClipPreprocessor(nn.Module):
    """uint8 3×H×W images -> CLIP-normalised float tensors, optionally resized to CLIP's input size.

    ``pixel_mean`` / ``pixel_std`` are in 0-255 units, RGB order (CLIP's); the module's device and dtype (float32,
    or float64 in a ``model.double()`` copy) are the tensors' device and dtype. ``input_format`` is the channel
    order of the images given (``INPUT.FORMAT``): BGR images are flipped to RGB, the order CLIP was trained on.
    """

    def __init__(self, pixel_mean: Sequence[float], pixel_std: Sequence[float], resolution: Tuple[int, int],
                 input_format: str = "RGB"):
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT {input_format!r}: PixelCLIP takes RGB or BGR images")
        self.flip_channels = input_format == "BGR"
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.resolution = tuple(resolution)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def to_device(self, image: torch.Tensor) -> torch.Tensor:
        """An image on this module's device in its float dtype, copied first and converted there: a uint8
        image crosses to the GPU as uint8 (a quarter of float32's bytes; ``Tensor.to(device, dtype)``
        would convert on the host first). The same values."""
        return image.to(self.device).to(self.pixel_mean.dtype)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """(…×)3×H×W uint8 or float -> float, CLIP-normalised, on this module's device and dtype."""
        image = self.to_device(image)
        if self.flip_channels:  # BGR -> RGB, the order of CLIP's training and of its mean and std
            image = image.flip(-3)
        return (image - self.pixel_mean) / self.pixel_std

    def batch(self, images: List[torch.Tensor]) -> torch.Tensor:
        """B images of any sizes -> B×3×resolution, CLIP-normalised (bilinear resize).

        Each image is resized first and normalised after: the same values (the per-channel affine
        normalisation commutes with bilinear weights that sum to 1), on CLIP's smaller grid."""
        resized = torch.cat([
            F.interpolate(self.to_device(im)[None], size=self.resolution, mode="bilinear",
                          align_corners=False)
            for im in images
        ])
        return self.normalize(resized)
