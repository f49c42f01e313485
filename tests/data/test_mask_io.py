"""Mask files in SA-1B's schema: RLE round trip, atomic writes, and one clear error per defect."""
import json
import os

import numpy as np
import pytest

from pixelclip.data.mask_io import (
    MaskFileError,
    decode_masks,
    encode_masks,
    read_mask_file,
    validate_mask_record,
    write_mask_file,
)

H, W = 24, 32


def _masks() -> np.ndarray:
    m = np.zeros((3, H, W), dtype=bool)
    m[0, 2:10, 3:20] = True
    m[1, 12:, :] = True
    m[2, 5, 7] = True
    return m


def _write(tmp_path, masks=None, name="a.json"):
    masks = _masks() if masks is None else masks
    path = tmp_path / name
    anns = encode_masks(masks, {"predicted_iou": [0.9, 0.8, 0.7][: len(masks)],
                                "stability_score": np.array([0.95, 0.9, 0.85])[: len(masks)]})
    write_mask_file(path, {"file_name": "a.jpg", "height": H, "width": W, "image_id": 7}, anns)
    return path


def test_rle_round_trip_keeps_pixels_area_bbox_and_scores(tmp_path):
    path = _write(tmp_path)
    record = read_mask_file(path, check_rle=True)
    assert record["image"] == {"file_name": "a.jpg", "height": H, "width": W, "image_id": 7}
    decoded = decode_masks(record)
    assert decoded.dtype == bool and decoded.shape == (3, H, W)
    np.testing.assert_array_equal(decoded, _masks())
    first = record["annotations"][0]
    assert isinstance(first["segmentation"]["counts"], str) and first["segmentation"]["size"] == [H, W]
    assert first["area"] == 8 * 17 and first["bbox"] == [3, 2, 17, 8]
    assert record["annotations"][2]["bbox"] == [7, 5, 1, 1]
    assert first["predicted_iou"] == 0.9 and record["annotations"][1]["stability_score"] == 0.9
    assert [a["id"] for a in record["annotations"]] == [0, 1, 2]  # an annotation's id is its index in the file
    np.testing.assert_array_equal(decode_masks(record["annotations"], indices=[2, 0]), _masks()[[2, 0]])
    assert decode_masks(record, indices=[]).shape == (0, H, W)


def test_uncompressed_rle_counts_are_accepted(tmp_path):
    record = {"image": {"file_name": "x.png", "height": 2, "width": 3},
              "annotations": [{"segmentation": {"size": [2, 3], "counts": [1, 2, 3]}, "area": 2, "bbox": [0, 0, 2, 2]}]}
    validate_mask_record(record)
    mask = decode_masks(record)[0]
    assert mask.sum() == 2 and mask.T.ravel().tolist() == [0, 1, 1, 0, 0, 0]  # column-major runs


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = _write(tmp_path / "sub" / "dir")
    assert os.listdir(path.parent) == ["a.json"]
    with pytest.raises(MaskFileError, match=r"annotations\[0\]\.segmentation\.size"):
        write_mask_file(tmp_path / "b.json", {"file_name": "b.jpg", "height": H + 1, "width": W},
                        encode_masks(_masks()))
    assert not (tmp_path / "b.json").exists() and os.listdir(tmp_path) == ["sub"]


def test_empty_file_names_file(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("")
    with pytest.raises(MaskFileError, match="empty file") as e:
        read_mask_file(path)
    assert str(path) in str(e.value)


def test_malformed_json_names_file(tmp_path):
    path = _write(tmp_path)
    path.write_text(path.read_text()[:40])  # truncated
    with pytest.raises(MaskFileError, match="malformed JSON") as e:
        read_mask_file(path)
    assert str(path) in str(e.value)


def test_rle_of_wrong_size_names_file_and_field(tmp_path):
    path = _write(tmp_path)
    record = json.loads(path.read_text())
    record["annotations"][1]["segmentation"]["size"] = [H // 2, W]
    path.write_text(json.dumps(record))
    with pytest.raises(MaskFileError) as e:
        read_mask_file(path)
    msg = str(e.value)
    assert str(path) in msg and "annotations[1].segmentation.size" in msg and "differs from the image size" in msg


def test_image_size_mismatch_with_the_image_file(tmp_path):
    path = _write(tmp_path)
    with pytest.raises(MaskFileError, match=r"image: size \[24, 32\] .* differs from the image file's size \[48, 64\]"):
        read_mask_file(path, image_size=(48, 64))


def test_empty_mask_list_is_an_error_unless_allowed(tmp_path):
    path = _write(tmp_path, masks=np.zeros((0, H, W), bool))
    with pytest.raises(MaskFileError, match=r"annotations: empty mask list") as e:
        read_mask_file(path)
    assert str(path) in str(e.value)
    assert read_mask_file(path, allow_empty=True)["annotations"] == []


def test_corrupt_counts_are_found_when_decoding(tmp_path):
    path = _write(tmp_path)
    record = json.loads(path.read_text())
    record["annotations"][2]["segmentation"]["counts"] += "5"
    path.write_text(json.dumps(record))
    with pytest.raises(MaskFileError, match=r"annotations\[2\]\.segmentation\.counts: malformed COCO RLE"):
        read_mask_file(path)  # found by the schema check, before any decoding
    with pytest.raises(MaskFileError, match=r"annotations\[2\]\.segmentation\.counts: invalid COCO RLE"):
        decode_masks(record, path=path)


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda r: r.pop("image"), "image"),
        (lambda r: r["image"].update(height="24"), "image.height"),
        (lambda r: r["image"].pop("file_name"), "image.file_name"),
        (lambda r: r["image"].update(height=0), "image.height"),
        (lambda r: r["image"].update(file_name=""), "image.file_name"),
        (lambda r: r.update(annotations={}), "annotations"),
        (lambda r: r["annotations"][0].update(segmentation=[[0, 0, 1, 1, 2, 2]]), "annotations[0].segmentation"),
        (lambda r: r["annotations"][0]["segmentation"].pop("counts"), "annotations[0].segmentation.counts"),
        (lambda r: r["annotations"][1].pop("area"), "annotations[1].area"),
        (lambda r: r["annotations"][1].update(bbox=[1, 2, 3]), "annotations[1].bbox"),
        (lambda r: r["annotations"][0].update(predicted_iou="high"), "annotations[0].predicted_iou"),
        (lambda r: r["annotations"][2].update(stability_score=None), "annotations[2].stability_score"),
    ],
)
def test_each_schema_defect_names_its_field(tmp_path, edit, field):
    path = _write(tmp_path)
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(MaskFileError) as e:
        read_mask_file(path)
    assert e.value.field == field and str(e.value).startswith(f"{path}: {field}: ")


def test_missing_file(tmp_path):
    with pytest.raises(MaskFileError, match="file not found"):
        read_mask_file(tmp_path / "nope.json")
    assert issubclass(MaskFileError, ValueError)


def test_encode_checks_shapes():
    with pytest.raises(ValueError, match="N×H×W"):
        encode_masks(np.zeros((H, W), bool))
    with pytest.raises(ValueError, match="scores"):
        encode_masks(_masks(), {"predicted_iou": [1.0]})
    assert encode_masks(np.zeros((0, H, W), bool)) == []
    empty = encode_masks(np.zeros((1, H, W), bool))[0]
    assert empty["area"] == 0 and empty["bbox"] == [0, 0, 0, 0]


# ------------------------------------------------------------------------------------------------
# RLE validation at the exact boundary: runs covering H×W pixels pass, H×W - 1 and H×W + 1 do not
# ------------------------------------------------------------------------------------------------
def _runs(mask: np.ndarray) -> list:
    """COCO run lengths of a mask, by hand: column-major pixels, the first run counts zeros."""
    flat = mask.T.ravel().astype(np.int64)  # column-major (Fortran) order
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0] + runs


def _boundary_masks() -> np.ndarray:
    """Masks with long runs (several RLE characters each, so the delta coding of the runs from the
    fourth on matters) and with many short ones; each ends in a background run of >= 2 pixels."""
    rng = np.random.default_rng(5)
    noise = rng.random((H, W)) < 0.4
    noise[-2:, -1] = False
    m = _masks()
    return np.stack([m[0], m[2], noise])


def _with_runs(runs: list, form: str):
    from pycocotools import mask as mask_util

    if form == "list":
        return runs
    rle = mask_util.frPyObjects({"size": [H, W], "counts": runs}, H, W)  # compresses the runs as given
    return rle["counts"].decode("ascii")  # (pycocotools does not check their sum)


@pytest.mark.parametrize("form", ["compressed", "list"])
def test_rle_runs_must_cover_exactly_h_times_w_pixels(tmp_path, form):
    masks = _boundary_masks()
    path = tmp_path / "edge.json"

    def write(k=None, delta=0):
        anns = encode_masks(masks)
        for j, mask in enumerate(masks):
            runs = _runs(mask)
            assert sum(runs) == H * W and runs[-1] >= 2  # the hand runs describe the mask
            runs[-1] += delta if j == k else 0
            anns[j]["segmentation"]["counts"] = _with_runs(runs, form)
        path.write_text(json.dumps({"image": {"file_name": "e.jpg", "height": H, "width": W}, "annotations": anns}))

    write()
    record = read_mask_file(path, check_rle=True)
    np.testing.assert_array_equal(decode_masks(record, path=path), masks)  # pycocotools agrees
    for k in range(len(masks)):
        for delta in (-1, 1):
            write(k, delta)
            with pytest.raises(MaskFileError) as e:
                read_mask_file(path)
            field = f"annotations[{k}].segmentation.counts"
            assert e.value.field == field
            assert str(e.value).startswith(f"{path}: {field}: malformed COCO RLE: its runs cover "
                                           f"{H * W + delta} pixels, its size {H}×{W} has {H * W}")


# ------------------------------------------------------------------------------------------------
# Masks at the corners of the format: pixel (0, 0), no pixel at all, a file without masks
# ------------------------------------------------------------------------------------------------
def test_a_mask_holding_the_first_pixel_and_an_empty_mask_are_valid(tmp_path):
    """COCO RLE counts zeros first, so a mask holding pixel (0, 0) starts with a run of 0 (SA-1B has
    such masks); an empty mask has area 0 and box [0, 0, 0, 0]. Both are written, read back and
    decoded as pycocotools does."""
    from pycocotools import mask as mask_util

    masks = np.zeros((2, H, W), dtype=bool)
    masks[0, 0, 0] = masks[0, 3, 0] = True  # column-major: 1 at index 0 and 3 -> runs 0, 1, 2, 1, rest
    anns = encode_masks(masks)
    assert [a["area"] for a in anns] == [2, 0] and anns[1]["bbox"] == [0, 0, 0, 0]
    hand = mask_util.frPyObjects({"size": [H, W], "counts": [0, 1, 2, 1, H * W - 4]}, H, W)
    assert anns[0]["segmentation"]["counts"] == hand["counts"].decode("ascii")
    path = tmp_path / "corner.json"
    write_mask_file(path, {"file_name": "c.jpg", "height": H, "width": W}, anns)
    record = read_mask_file(path, check_rle=True)
    np.testing.assert_array_equal(decode_masks(record), masks)
    listed = {"image": {"file_name": "c.jpg", "height": H, "width": W},
              "annotations": [{"segmentation": {"size": [H, W], "counts": [0, 1, 2, 1, H * W - 4]},
                               "area": 2, "bbox": [0, 0, 1, 4]}]}
    validate_mask_record(listed)
    np.testing.assert_array_equal(decode_masks(listed)[0], masks[0])


def test_a_record_without_masks_decodes_to_zero_masks_of_its_image_size():
    record = {"image": {"file_name": "a.jpg", "height": H, "width": W}, "annotations": []}
    assert decode_masks(record).shape == (0, H, W)
