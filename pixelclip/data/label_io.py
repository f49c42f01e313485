"""Single-channel class-id label maps (the benchmarks' ground truth): one reader, numpy-2-safe."""
import numpy as np
from detectron2.utils.file_io import PathManager
from PIL import Image, UnidentifiedImageError

__all__ = ["read_label_file"]

# PIL modes of single-channel class-id maps: 8-bit gray / palette indices, 16-bit, 32-bit integer.
_LABEL_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I;16N", "I")


def read_label_file(path: str, dtype=np.int64) -> np.ndarray:
    """Read a single-channel class-id map (8-bit or 16-bit PNG / TIFF; palette PNGs give indices).

    Returns:
        H×W array of ``dtype`` (``None``: the file's own integer type). Raises ``FileNotFoundError`` /
        ``ValueError`` naming the file when it is missing, unreadable, or not a single-channel label map.
    """
    try:
        with PathManager.open(path, "rb") as f, Image.open(f) as img:
            img.load()
            mode = img.mode
            if mode not in _LABEL_MODES:
                raise ValueError(
                    f"label file {path} has image mode {mode!r}; expected a single-channel "
                    "class-id map (8-bit or 16-bit). Colour-coded labels must be converted first "
                    "(datasets/prepare_*.py)"
                )
            array = np.array(img)
    except FileNotFoundError:
        raise FileNotFoundError(f"label file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as e:
        raise ValueError(f"label file {path} is corrupt or not an image ({e})") from None
    if array.ndim != 2:
        raise ValueError(f"label file {path} has shape {array.shape}; expected H×W")
    return array if dtype is None else array.astype(dtype, copy=False)
