"""EXIF orientation: a photo stored sideways with an orientation tag is read upright (as Detectron2's
read_image shows it) by the training mapper, the test mapper and the benchmark registration, so its
masks and labels, made for the upright image, fit it.

The stored pixels are made by hand from the upright image (EXIF 2.3: orientation 6 = the stored image
is shown turned 90 degrees clockwise, 8 = 90 counter-clockwise, 3 = 180, 5 and 7 = mirrored about
a diagonal)."""
import numpy as np
import pytest
from detectron2.data import transforms as T
from PIL import Image

from pixelclip.data.datasets._sem_seg import load_sem_seg_pairs
from pixelclip.data.mappers import PixelCLIPUnlabeledMapper
from pixelclip.data.mappers.semantic_test_dataset_mapper import SemanticTestMapper
from pixelclip.data.mask_io import encode_masks, write_mask_file

H, W = 8, 12  # upright: landscape
STORED = {  # orientation -> the stored pixels of the upright image
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, 1),  # stored turned counter-clockwise; shown turned back clockwise
    8: lambda a: np.rot90(a, -1),
    5: lambda a: a.transpose(1, 0, 2),  # mirrored about the main diagonal
    7: lambda a: np.rot90(a.transpose(1, 0, 2), 2),  # mirrored about the other diagonal
}


def _upright():
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[...] = (20, 20, 20)
    mask = np.zeros((1, H, W), dtype=bool)
    mask[0, 1:4, 2:9] = True  # an off-centre bar: every rotation or transpose of it differs
    mask[0, 4:7, 2:4] = True
    image[mask[0]] = (230, 30, 30)
    return image, mask


def _save_with_orientation(path, upright, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(STORED[orientation](upright))).save(path, exif=exif)


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_training_mapper_reads_the_image_upright_and_its_masks_fit(tmp_path, orientation):
    image, mask = _upright()
    _save_with_orientation(tmp_path / "photo.png", image, orientation)
    assert Image.open(tmp_path / "photo.png").size == ((W, H) if orientation == 3 else (H, W))  # as stored
    write_mask_file(tmp_path / "photo.json", {"file_name": "photo.png", "height": H, "width": W},
                    encode_masks(mask))
    mapper = PixelCLIPUnlabeledMapper(augmentations=[T.ResizeShortestEdge((H,), 4096, "choice")])
    out = mapper({"file_name": str(tmp_path / "photo.png"), "mask_file": str(tmp_path / "photo.json"),
                  "image_id": 0})
    assert out is not None, "the upright-size mask file was refused: the image was not read upright"
    assert (out["height"], out["width"]) == (H, W)
    np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), image)
    np.testing.assert_array_equal(out["instances"].gt_masks.tensor.numpy(), mask)


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_test_mapper_and_registration_see_the_upright_size(tmp_path, orientation):
    image, mask = _upright()
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _save_with_orientation(tmp_path / "images" / "a.png", image, orientation)
    Image.fromarray(mask[0].astype(np.uint8)).save(tmp_path / "labels" / "a.png")  # upright label map

    records = load_sem_seg_pairs(str(tmp_path / "images"), str(tmp_path / "labels"), gt_ext="png", image_ext="png")
    assert [(r["height"], r["width"]) for r in records] == [(H, W)]  # from the header, EXIF applied

    out = SemanticTestMapper(min_size=H, max_size=4096)(records[0])
    np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), image)
    label = np.array(Image.open(records[0]["sem_seg_file_name"]))
    assert label.shape == (out["height"], out["width"]) == tuple(out["image"].shape[1:])
    red = out["image"][0].numpy() > 128
    np.testing.assert_array_equal(red, label.astype(bool))  # the label lies on the object
