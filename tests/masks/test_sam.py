"""SAM: the automatic mask generator's output is SA-1B's schema; checkpoints give clear errors."""
import numpy as np
import pytest
import torch

from pixelclip.data.mask_io import decode_masks, validate_mask_record
from pixelclip.masks.sam import SamMasker, _describe_mismatch, build_sam
from tests.masks.tiny_models import TINY_SAM_GENERATOR, tiny_sam


def test_tiny_sam_masks_are_valid_sa1b_annotations():
    masker = SamMasker(tiny_sam(), **TINY_SAM_GENERATOR)
    image = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    annotations = masker(image)
    assert len(annotations) > 0
    validate_mask_record({"image": {"file_name": "x.png", "height": 40, "width": 56}, "annotations": annotations})
    masks = decode_masks(annotations)
    assert masks.shape == (len(annotations), 40, 56)
    assert [a["area"] for a in annotations] == masks.reshape(len(masks), -1).sum(1).tolist()
    assert {"predicted_iou", "stability_score", "point_coords", "crop_box"} <= set(annotations[0])


def test_missing_checkpoint_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"sam_vit_b_01ec64\.pth .* --sam-checkpoint"):
        build_sam("vit_b", str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="must be one of"):
        build_sam("vit_x", "whatever.pth")


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam().state_dict(), path)
    with pytest.raises(ValueError, match=r"tiny\.pth' does not fit model type 'vit_b': \d+ missing tensors .*; \d+ tensors of another "
                       r"shape, file vs model \(image_encoder\.pos_embed \(1, 4, 4, 32\) vs \(1, 64, 64, 768\), .*"
                       r"\(the vit_b file is sam_vit_b_01ec64\.pth\)"):
        build_sam("vit_b", str(path))
    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(4, 5)}
    given = {"a": torch.zeros(2), "c": torch.zeros(5, 4), "x": torch.zeros(1), "y": torch.zeros(1), "z": torch.zeros(1)}
    assert _describe_mismatch(expected, given) == (
        "1 missing tensors (b); 3 unexpected tensors (x, y, ...); 1 tensors of another shape, file vs model "
        "(c (5, 4) vs (4, 5))")
    assert _describe_mismatch(expected, dict(expected)) == ""


def test_annotations_carry_the_generator_records_field_by_field():
    """Each annotation holds segment-anything's own coco_rle record: same RLE, area, XYWH box,
    predicted IoU, stability score, point (x, y) and crop box, in the generator's order."""
    from segment_anything import SamAutomaticMaskGenerator

    sam, knobs = tiny_sam(), {**TINY_SAM_GENERATOR, "box_nms_thresh": 1.0}  # no NMS: many masks
    image = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    records = SamAutomaticMaskGenerator(sam, output_mode="coco_rle", **knobs).generate(image)
    annotations = SamMasker(sam, **knobs)(image)
    assert len(records) > 1 and len(annotations) == len(records)
    assert len({r["predicted_iou"] for r in records} | {r["stability_score"] for r in records}) > 1
    assert [a["id"] for a in annotations] == list(range(len(records)))  # its index in the file
    for ann, r in zip(annotations, records):
        assert ann["segmentation"] == r["segmentation"] and ann["area"] == r["area"] and ann["bbox"] == r["bbox"]
        assert ann["predicted_iou"] == r["predicted_iou"] and ann["stability_score"] == r["stability_score"]
        assert ann["point_coords"] == r["point_coords"] and ann["crop_box"] == r["crop_box"]
