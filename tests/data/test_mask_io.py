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
        (lambda r: r.update(annotations={}), "annotations"),
        (lambda r: r["annotations"][0].update(segmentation=[[0, 0, 1, 1, 2, 2]]), "annotations[0].segmentation"),
        (lambda r: r["annotations"][0]["segmentation"].pop("counts"), "annotations[0].segmentation.counts"),
        (lambda r: r["annotations"][1].pop("area"), "annotations[1].area"),
        (lambda r: r["annotations"][1].update(bbox=[1, 2, 3]), "annotations[1].bbox"),
        (lambda r: r["annotations"][0].update(predicted_iou="high"), "annotations[0].predicted_iou"),
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
