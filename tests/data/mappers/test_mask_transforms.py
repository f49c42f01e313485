"""pixelclip/data/mappers/mask_transforms.py: the fast RLE path skips masks whose box misses the crop;
a mask whose box touches the crop's first or last row / column exactly must still be kept.

Reference: every mask decoded at full size and moved by Detectron2's own
``TransformList.apply_segmentation`` (a mask is kept when it keeps a pixel)."""
import numpy as np
import pytest
from detectron2.data import transforms as T

from pixelclip.data.mappers.mask_transforms import transform_rle_masks
from pixelclip.data.mask_io import encode_masks

H, W = 14, 18
# The crop below covers rows 4..10 and columns 5..13 (inclusive).
X0, Y0, CW, CH = 5, 4, 9, 7


def _reference(masks: np.ndarray, tfm: T.TransformList):
    moved = [tfm.apply_segmentation(m.astype(np.uint8)).astype(bool) for m in masks]
    kept = [i for i, m in enumerate(moved) if m.any()]
    return kept, moved


def _check(masks: np.ndarray, tfm: T.TransformList):
    got, kept = transform_rle_masks(encode_masks(masks), tfm, (H, W))
    expected_kept, moved = _reference(masks, tfm)
    assert kept.tolist() == expected_kept
    if expected_kept:
        np.testing.assert_array_equal(got, np.stack([moved[i] for i in expected_kept]))
    return kept.tolist()


def _edge_masks():
    """Masks whose box touches each edge of the crop exactly, and their neighbours one pixel outside."""
    x1, y1 = X0 + CW - 1, Y0 + CH - 1  # last column / row inside the crop
    boxes = {  # name: (rows slice, cols slice); "in" masks share exactly one row or column with the crop
        "left in": (slice(6, 9), slice(0, X0 + 1)),
        "left out": (slice(6, 9), slice(0, X0)),
        "right in": (slice(6, 9), slice(x1, W)),
        "right out": (slice(6, 9), slice(x1 + 1, W)),
        "top in": (slice(0, Y0 + 1), slice(7, 10)),
        "top out": (slice(0, Y0), slice(7, 10)),
        "bottom in": (slice(y1, H), slice(7, 10)),
        "bottom out": (slice(y1 + 1, H), slice(7, 10)),
        "first pixel": (slice(Y0, Y0 + 1), slice(X0, X0 + 1)),
        "last pixel": (slice(y1, y1 + 1), slice(x1, x1 + 1)),
        "diagonal out": (slice(y1 + 1, H), slice(x1 + 1, W)),
        "everything": (slice(0, H), slice(0, W)),
    }
    masks = np.zeros((len(boxes), H, W), dtype=bool)
    for k, (rows, cols) in enumerate(boxes.values()):
        masks[k, rows, cols] = True
    return list(boxes), masks


@pytest.mark.parametrize("flip", [None, "h", "v"])
def test_masks_touching_the_crop_edges_are_kept(flip):
    names, masks = _edge_masks()
    tfms = [T.CropTransform(X0, Y0, CW, CH)]
    if flip == "h":
        tfms.append(T.HFlipTransform(CW))
    elif flip == "v":
        tfms.append(T.VFlipTransform(CH))
    kept = _check(masks, T.TransformList(tfms))
    # Hand count: every "in" mask, the two corner pixels and the full mask are kept, no "out" mask.
    assert [names[i] for i in kept] == [n for n in names if not n.endswith("out")]


def test_an_l_shaped_mask_whose_box_overlaps_but_whose_pixels_miss_is_dropped():
    mask = np.zeros((1, H, W), dtype=bool)
    mask[0, 0, :] = True  # top row, all columns
    mask[0, :, 0] = True  # left column: the box is the whole image, no pixel inside the crop
    assert _check(mask, T.TransformList([T.CropTransform(X0, Y0, CW, CH)])) == []


@pytest.mark.parametrize("tfms", [
    [T.CropTransform(X0, Y0, CW, CH)],
    [T.ResizeTransform(H, W, 2 * H + 3, 2 * W - 1), T.CropTransform(7, 9, 15, 11), T.HFlipTransform(15)],
    [T.ResizeTransform(H, W, 9, 11), T.CropTransform(2, 1, 6, 5), T.VFlipTransform(5)],
], ids=["crop", "enlarge-crop-hflip", "shrink-crop-vflip"])
def test_every_single_pixel_mask_matches_detectron2(tfms):
    """One mask per pixel of the image: exactly the pixels the transforms sample survive, each
    where apply_segmentation puts it (any off-by-one in the box test or the index maps fails)."""
    masks = np.zeros((H * W, H, W), dtype=bool)
    masks.reshape(H * W, -1)[np.arange(H * W), np.arange(H * W)] = True
    kept = _check(masks, T.TransformList(tfms))
    assert 0 < len(kept) < H * W


def test_transforms_without_an_index_map_fall_back_to_detectron2():
    """A rotation is no resize/crop/flip: every mask goes through apply_segmentation, and a mask that
    leaves the image (the corner pixel, turned 30° about the centre) is dropped."""
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 0, 0] = True  # rotates out of the image
    masks[1, 5:9, 6:12] = True
    masks[2, :, :3] = True
    rotation = T.RotationTransform(H, W, angle=30, expand=False)
    assert not rotation.apply_segmentation(masks[0].astype(np.uint8)).any()
    kept = _check(masks, T.TransformList([rotation, T.HFlipTransform(W)]))
    assert kept == [1, 2]


def test_photometric_transforms_leave_the_masks_alone():
    masks = _edge_masks()[1]
    tfm = T.TransformList([T.ColorTransform(lambda img: 255 - img), T.CropTransform(X0, Y0, CW, CH)])
    _check(masks, tfm)


def test_with_no_mask_the_output_has_the_transformed_size():
    extent = T.ExtentTransform(src_rect=(2, 3, 12, 9), output_size=(5, 7))  # (h, w) out
    masks, kept = transform_rle_masks([], T.TransformList([extent]), (H, W))
    assert masks.shape == (0, 5, 7) and kept.shape == (0,)
