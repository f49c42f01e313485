"""Pictures of predictions: colour overlays with a legend, raw label maps, side-by-side panels."""
import os
from typing import List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

from .utils.io import atomic_write  # noqa: E402


def model_title(cfg) -> str:
    """What produced a prediction, for the title of its panel: ``PixelCLIP (<checkpoint file>)`` when
    ``MODEL.WEIGHTS`` loads fine-tuned weights, else the CLIP as configured, not fine-tuned
    (``CLIP <CLIP_MODEL_NAME> (<CLIP_PRETRAINED>), not fine-tuned``); a ``DENSE_MODE`` other than the
    default ``value`` is named too."""
    p = cfg.MODEL.PIXELCLIP
    mode = "" if p.DENSE_MODE == "value" else f", {p.DENSE_MODE}"
    if cfg.MODEL.WEIGHTS:
        return f"PixelCLIP ({os.path.basename(cfg.MODEL.WEIGHTS)}{mode})"
    return f"CLIP {p.CLIP_MODEL_NAME} ({p.CLIP_PRETRAINED or 'random weights'}{mode}), not fine-tuned"


def class_colors(num_classes: int, seed: int = 0) -> np.ndarray:
    """A fixed, well-spread RGB colour per class: num_classes×3 uint8."""
    rng = np.random.default_rng(seed)
    hues = (np.arange(num_classes) * 0.61803398875) % 1.0
    hsv = np.stack([hues, 0.55 + 0.45 * rng.random(num_classes), 0.6 + 0.4 * rng.random(num_classes)], axis=1)
    return (matplotlib.colors.hsv_to_rgb(hsv) * 255).astype(np.uint8)


def colorize(labels: np.ndarray, colors: np.ndarray, ignore_label: Optional[int] = None) -> np.ndarray:
    """H×W class ids -> H×W×3 uint8 (ignored / out-of-range pixels black)."""
    out = np.zeros(labels.shape + (3,), dtype=np.uint8)
    valid = (labels >= 0) & (labels < len(colors))
    if ignore_label is not None:
        valid &= labels != ignore_label
    out[valid] = colors[labels[valid]]
    return out


def overlay(image: np.ndarray, labels: np.ndarray, colors: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend an H×W×3 uint8 RGB image with the colours of H×W labels."""
    return (image * (1 - alpha) + colorize(labels, colors) * alpha).astype(np.uint8)


def save_label_png(path: str, labels: np.ndarray) -> None:
    """Raw class ids as an 8-bit PNG, or 16-bit when ids exceed 255 (atomic write)."""
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    image = Image.fromarray(labels.astype(dtype))
    atomic_write(path, writer=lambda f: image.save(f, format="PNG"))


def save_panels(path: str, panels: Sequence[np.ndarray], titles: Sequence[str], class_names: Sequence[str],
                colors: np.ndarray, present: Optional[List[int]] = None, dpi: int = 100) -> List[str]:
    """Images side by side with a legend of ``class_names`` (only ``present`` ids if given); atomic.

    Returns the legend's entries, in order."""
    ids = list(range(len(class_names))) if present is None else sorted(present)
    height, width = panels[0].shape[:2]
    scale = max(1.0, 256 / max(height, 1))
    fig_w = len(panels) * width * scale / dpi + 2.2
    fig, axes = plt.subplots(1, len(panels), figsize=(fig_w, height * scale / dpi + 0.6), dpi=dpi, squeeze=False)
    for ax, panel, title in zip(axes[0], panels, titles):
        ax.imshow(panel, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    handles = [Patch(color=colors[i] / 255.0, label=class_names[i]) for i in ids]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.01, right=1 - 2.0 / fig_w, top=0.88, bottom=0.02, wspace=0.03)
    try:
        atomic_write(path, writer=lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return [h.get_label() for h in handles]
