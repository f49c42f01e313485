"""pixelclip/data/image_io.py: 16-bit grayscale inputs scaled to 8 bits (PIL's convert clips them)."""
import numpy as np
import pytest
from PIL import Image

from pixelclip.data.image_io import read_image, to_8bit


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    # v8 = round(v16 / 257): 0 -> 0, 128 -> 0 (0.498), 129 -> 1 (0.502), 257 -> 1, 32896 -> 128, 65535 -> 255
    values = np.array([[0, 128, 129], [257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    expected = np.array([[0, 0, 1], [1, 128, 255]], dtype=np.uint8)
    rgb = read_image(str(tmp_path / "g16.png"), "RGB")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)
    np.testing.assert_array_equal(read_image(str(tmp_path / "g16.png"), "L")[..., 0], expected)
    clipped = np.asarray(Image.open(tmp_path / "g16.png").convert("RGB"))[..., 0]  # what PIL alone gives
    assert clipped[1, 1] == 255 != expected[1, 1]


def test_8_bit_images_are_read_as_detectron2_reads_them(tmp_path):
    from detectron2.data import detection_utils as utils

    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    for fmt in ("RGB", "BGR"):
        path = str(tmp_path / "a.png")
        np.testing.assert_array_equal(read_image(path, fmt), utils.read_image(path, fmt))


def test_a_32_bit_integer_image_outside_the_16_bit_range_is_refused():
    image = Image.fromarray(np.array([[0, 70000]], dtype=np.int32), mode="I")
    with pytest.raises(ValueError, match=r"values 0..70000, outside the 16-bit range 0..65535"):
        to_8bit(image)
    in_range = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), mode="I")
    assert np.asarray(to_8bit(in_range)).tolist() == [[0, 255]]


def test_big_endian_16_bit_and_negative_32_bit_images():
    """A big-endian 16-bit image (mode I;16B, e.g. from a Motorola-order TIFF) is scaled like any 16-bit one;
    a negative 32-bit value is not a 16-bit picture either."""
    big = Image.frombytes("I;16B", (3, 1), np.array([[0, 32896, 65535]], dtype=">u2").tobytes())
    out = to_8bit(big)
    assert out.mode == "L" and np.asarray(out).tolist() == [[0, 128, 255]]
    negative = Image.fromarray(np.array([[-1, 100]], dtype=np.int32), mode="I")
    with pytest.raises(ValueError, match=r"values -1..100, outside the 16-bit range"):
        to_8bit(negative)
