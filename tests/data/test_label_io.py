"""pixelclip/data/label_io.py: every single-channel integer layout PIL opens a class-id map as."""
import numpy as np
import pytest
from PIL import Image

from pixelclip.data.label_io import read_label_file


def _big_endian_tiff(path, values):
    Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes()).save(path)


def _int32_tiff(path, values):
    Image.fromarray(values.astype(np.int32), mode="I").save(path)


@pytest.mark.parametrize("write,mode", [(_big_endian_tiff, "I;16B"), (_int32_tiff, "I")])
def test_16_bit_big_endian_and_32_bit_label_files(tmp_path, write, mode):
    values = np.array([[0, 300, 846], [65535, 1, 2]])
    path = tmp_path / "label.tif"
    write(path, values)
    assert Image.open(path).mode == mode
    out = read_label_file(str(path))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, values)
