"""Reading an input image as 8-bit pixels, 16-bit grayscale files included.

Detectron2's ``read_image`` converts with PIL, whose ``convert("RGB")`` of a 16-bit grayscale image
(modes ``I;16*`` and ``I``) clips every value above 255 to 255: a 16-bit photo comes out nearly
white. Here such an image is scaled to 8 bits explicitly, v8 = round(v16 / 257) (65535 -> 255, the
whole 16-bit range onto the whole 8-bit range, as PIL does for 16-bit RGB files), then converted as
Detectron2 converts (EXIF orientation applied, ``format`` RGB / BGR / L).
"""
import numpy as np
from detectron2.data import detection_utils as utils
from detectron2.utils.file_io import PathManager
from PIL import Image

__all__ = ["read_image", "to_8bit"]

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale PIL image (mode ``I;16*``, or ``I`` with values in 0..65535) as an 8-bit
    ``L`` image, each value divided by 257 and rounded; other images unchanged.

    Raises:
        ValueError: a mode ``I`` image with values outside 0..65535 (not a 16-bit picture).
    """
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    values = np.asarray(image).astype(np.int64)  # H×W
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(f"32-bit integer image with values {values.min()}..{values.max()}, outside the 16-bit range "
                         "0..65535; save it as an 8- or 16-bit image")
    return Image.fromarray(((values + 128) // 257).astype(np.uint8), mode="L")  # round(v / 257), exact in ints


def read_image(path: str, format: str = "RGB") -> np.ndarray:
    """Detectron2's ``read_image`` (H×W×3 uint8 for RGB / BGR) with 16-bit grayscale scaled to 8 bits."""
    with PathManager.open(path, "rb") as f:
        image = Image.open(f)
        image = utils._apply_exif_orientation(image)
        return utils.convert_PIL_to_numpy(to_8bit(image), format)
