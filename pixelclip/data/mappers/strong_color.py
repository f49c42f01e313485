"""The student's strong view: colour jitter, grayscale and blur (photometric, same geometry).

Release values (PixelCLIP's SA-1B mapper, after FixMatch-style semi-supervised segmentation):
colour jitter (brightness 0.5, contrast 0.5, saturation 0.5, hue 0.25) with probability 0.8,
grayscale with probability 0.2, Gaussian blur (sigma in [0.1, 2]) with probability 0.5. Each draw
comes from the generator the release draws it from (Python's ``random`` for the jitter and blur
coins, torch's for the jitter factors and the grayscale coin, numpy's for the blur sigma), so a run
seeded like the release's makes the same views. The release then blacks out a box
(``pixelclip/data/mappers/cutout.py``); the mapper applies it, since the box also leaves the masks.
"""
import random
from typing import Tuple

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision import transforms as tv

__all__ = ["StrongColorAugmentation"]


class StrongColorAugmentation:
    """Callable ``H×W×3 uint8 -> H×W×3 uint8`` (same size), in the given channel order."""

    def __init__(
        self,
        image_format: str = "RGB",
        jitter_prob: float = 0.8,
        brightness: float = 0.5,
        contrast: float = 0.5,
        saturation: float = 0.5,
        hue: float = 0.25,
        grayscale_prob: float = 0.2,
        blur_prob: float = 0.5,
        blur_sigma: Tuple[float, float] = (0.1, 2.0),
    ):
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"StrongColorAugmentation: image_format must be RGB or BGR, got {image_format!r}")
        self.is_bgr = image_format == "BGR"
        self.jitter_prob = jitter_prob
        self.jitter = tv.ColorJitter(brightness, contrast, saturation, hue)
        self.grayscale_prob = grayscale_prob
        self.blur_prob = blur_prob
        self.blur_sigma = blur_sigma

    def __call__(self, image: np.ndarray) -> np.ndarray:
        rgb = image[:, :, ::-1] if self.is_bgr else image
        pil = Image.fromarray(np.ascontiguousarray(rgb))
        if random.random() < self.jitter_prob:
            pil = self.jitter(pil)
        if torch.rand(1).item() < self.grayscale_prob:  # torchvision's RandomGrayscale coin
            pil = pil.convert("L").convert("RGB")
        if random.random() < self.blur_prob:
            pil = pil.filter(ImageFilter.GaussianBlur(radius=np.random.uniform(*self.blur_sigma)))
        out = np.asarray(pil)
        return np.ascontiguousarray(out[:, :, ::-1] if self.is_bgr else out)

    def __repr__(self) -> str:
        return (f"StrongColorAugmentation(jitter={self.jitter}, p_jitter={self.jitter_prob}, "
                f"p_gray={self.grayscale_prob}, p_blur={self.blur_prob}, sigma={self.blur_sigma})")
