"""The release's cutout: a black box in the student's strong view, removed from every mask.

PixelCLIP's release (its SA-1B mapper, after FixMatch-style strong augmentation) always cuts one box
out of the strong view after the colour jitter, grayscale and blur: its sides are uniform fractions
0.1-0.5 of the view's sides and it lies inside the view (its centre range lets it pass the
far border by one pixel, which is clipped). The box's pixels are set to 0 in the
strong view only (the teacher's weak view keeps them) and are removed from every mask; masks it
empties are dropped. The draws come from numpy's global RNG in the release's order, so a run seeded
like the release's cuts the same box.
"""
from typing import Tuple

import numpy as np

__all__ = ["cutout_box", "apply_cutout"]


def cutout_box(height: int, width: int) -> Tuple[int, int, int, int]:
    """Draw the release's cutout box in a height×width view.

    Returns:
        (y0, y1, x0, x1): rows y0:y1 and columns x0:x1 are cut (possibly empty for a view under 10 px).
    """
    # The release draws the box's horizontal side from the view's height and its vertical side from the
    # width; on its square 640×640 crops the two are the same distribution. Kept as drawn.
    side_x = int(height * np.random.uniform(0.1, 0.5))
    side_y = int(width * np.random.uniform(0.1, 0.5))
    np.random.random()  # the release's "apply with probability 1" coin: drawn, and always passes
    half_x, half_y = side_x // 2, side_y // 2
    # the release's centre range: the box stays inside, but for the last centre, which passes the far border by
    # one pixel (clipped below)
    lo_x, hi_x = sorted((half_x, width + 1 - side_x % 2 - half_x))
    lo_y, hi_y = sorted((half_y, height + 1 - side_y % 2 - half_y))
    x0 = int(np.random.randint(lo_x, hi_x + 1)) - half_x
    y0 = int(np.random.randint(lo_y, hi_y + 1)) - half_y
    return max(0, y0), min(height, y0 + side_y), max(0, x0), min(width, x0 + side_x)


def apply_cutout(strong: np.ndarray, masks: np.ndarray, box: Tuple[int, int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Black out ``box`` in the strong view and remove it from the masks.

    Args:
        strong: H×W×3 uint8 strong view (any channel order: black is 0 in each).
        masks: bool N×H×W.
        box: (y0, y1, x0, x1) from :func:`cutout_box`.
    Returns:
        the strong view with the box at 0, and the masks that keep a pixel outside the box (order kept).
    """
    y0, y1, x0, x1 = box
    strong = strong.copy()
    strong[y0:y1, x0:x1] = 0
    if len(masks) and y1 > y0 and x1 > x0:
        masks = masks.copy()
        masks[:, y0:y1, x0:x1] = False
        masks = masks[masks.reshape(len(masks), -1).any(axis=1)]
    return strong, np.ascontiguousarray(masks)
