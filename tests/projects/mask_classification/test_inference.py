"""Crops, the FC-CLIP ensemble, semantic / panoptic painting and proposal outputs of zero-shot mask
classification (projects/MaskClassification/pixelclip_maskcls/inference.py), by hand on tiny tensors."""
import pytest
import torch
from detectron2.structures import Instances

from pixelclip_maskcls.inference import (
    crop_masked_regions,
    geometric_ensemble,
    mask_boxes,
    masks_from_output,
    panoptic_from_masks,
    semantic_scores,
)
from pixelclip_maskcls.zero_shot_mask_classifier import seen_class_mask


def test_crops_follow_the_mask_box():
    image = torch.randn(3, 8, 8)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)  # masks at 2× the image's resolution
    masks[0, 4:12, 8:16] = True  # image rows 2..5, cols 4..7
    masks[1, 4:8, 8:12] = True
    assert mask_boxes(masks)[0].tolist() == [8, 4, 16, 12]
    crops = crop_masked_regions(image, masks[:1], size=4, style="crop")
    torch.testing.assert_close(crops[0], image[:, 2:6, 4:8])
    whole = crop_masked_regions(image, masks[1:], size=8, style="mask")
    expected = image.clone()
    expected[:, ~masks[1, ::2, ::2]] = 0
    torch.testing.assert_close(whole[0], expected)
    cm = crop_masked_regions(image, masks, size=4, style="cropmask")
    assert cm.shape == (2, 3, 4, 4)
    torch.testing.assert_close(cm[0], image[:, 2:6, 4:8])  # the box is all mask
    assert mask_boxes(torch.zeros(1, 5, 7, dtype=torch.bool))[0].tolist() == [0, 0, 7, 5]
    with pytest.raises(ValueError, match="CROP_STYLE"):
        crop_masked_regions(image, masks, 4, "bbox")


def test_geometric_ensemble_is_fcclips_formula():
    p_in = torch.tensor([[0.7, 0.2, 0.1]])
    p_clip = torch.tensor([[0.1, 0.3, 0.6]])
    seen = torch.tensor([True, True, False])
    out = geometric_ensemble(p_in, p_clip, seen, alpha=0.4, beta=0.8)
    manual = torch.stack([p_in[0, 0] ** 0.6 * p_clip[0, 0] ** 0.4, p_in[0, 1] ** 0.6 * p_clip[0, 1] ** 0.4,
                          p_in[0, 2] ** 0.2 * p_clip[0, 2] ** 0.8])
    torch.testing.assert_close(out[0], manual / manual.sum())
    only_clip = geometric_ensemble(p_in, p_clip, torch.zeros(3, dtype=torch.bool), alpha=0.0, beta=1.0)
    torch.testing.assert_close(only_clip, p_clip)
    assert seen_class_mask(["sofa, couch", "cat", "tree"], ["couch", "dog"]).tolist() == [True, False, False]
    assert seen_class_mask(["a", "b"], None).tolist() == [False, False]


def test_semantic_and_panoptic_painting():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :2] = True  # rows 0-1
    masks[1, 1:3] = True  # rows 1-2, overlaps mask 0
    masks[2, 3, :2] = True
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    fill = torch.full((2, 4, 4), 0.5)
    sem = semantic_scores(probs, masks, fill)
    torch.testing.assert_close(sem[:, 1, 0], probs[0] + probs[1])
    torch.testing.assert_close(sem[:, 3, 3], torch.tensor([0.5, 0.5]))  # uncovered
    assert semantic_scores(probs, masks)[:, 3, 3].tolist() == [0.0, 0.0]
    pan, infos = panoptic_from_masks(probs, masks, overlap_threshold=0.5)
    assert [i["mask_index"] for i in infos] == [0, 1, 2]
    assert (pan[1] == 1).all() and (pan[2] == 2).all() and pan[3, 3] == 0
    pan, infos = panoptic_from_masks(probs, masks, overlap_threshold=0.9)  # mask 1 lost half to mask 0
    assert [i["mask_index"] for i in infos] == [0, 2]
    pan, infos = panoptic_from_masks(probs, masks, overlap_threshold=0.5, thing_classes=[1])
    assert [i["category_id"] for i in infos] == [0, 1]  # masks 0 and 2 (stuff class 0) merged
    assert infos[0]["area"] == 8 + 2 and (pan[3, :2] == 1).all()


def test_masks_from_outputs_of_d2_models():
    inst = Instances((4, 5))
    inst.pred_masks = torch.rand(3, 4, 5)
    inst.scores = torch.tensor([0.9, 0.1, 0.8])
    inst.pred_classes = torch.tensor([2, 0, 1])
    masks, probs = masks_from_output({"instances": inst}, num_classes=3, score_threshold=0.5)
    assert masks.dtype == torch.bool and masks.shape == (2, 4, 5)
    assert probs.argmax(1).tolist() == [2, 1] and torch.allclose(probs.sum(1), torch.ones(2))
    logits = torch.randn(2, 4)  # K + void
    masks, probs = masks_from_output({"pred_masks": torch.randn(2, 4, 5), "pred_logits": logits}, num_classes=3)
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
    seg = torch.tensor([[1, 1, 0], [2, 2, 0]], dtype=torch.int32)
    masks, probs = masks_from_output({"panoptic_seg": (seg, [{"id": 1, "category_id": 0}, {"id": 2, "category_id": 4}])}, 3)
    assert masks.shape == (2, 2, 3) and probs is None  # category 4 is outside the vocabulary
    with pytest.raises(ValueError, match="cannot find masks"):
        masks_from_output({"sem_seg": torch.zeros(3, 2, 2)}, 3)


def test_nonnegative_mask_logits_are_still_logits():
    """``pred_masks`` with a value above 1 are logits even when none is negative: sigmoid(0.3) = 0.574 > 0.5, so
    the 0.3 pixel is inside; sigmoid(0) = 0.5 is not above the threshold, so the 0 pixel is outside."""
    logits = torch.tensor([[[0.0, 0.3], [2.0, 0.0]]])
    masks, probs = masks_from_output({"pred_masks": logits}, num_classes=3)
    assert probs is None
    assert masks.tolist() == [[[False, True], [True, False]]]
    # probabilities (all within [0, 1]) are thresholded as they are
    masks, _ = masks_from_output({"pred_masks": torch.tensor([[[0.3, 0.6]]])}, num_classes=3)
    assert masks.tolist() == [[[False, True]]]


def test_instance_scores_become_clamped_smoothed_one_hot_probabilities():
    """K = 3. A score of 1 is clamped to 0.999 (the rest 0.001 / 2 each); a score equal to the threshold is
    kept; a class id the vocabulary does not have (K or more) gives no probabilities at all."""
    inst = Instances((2, 2))
    inst.pred_masks = torch.ones(3, 2, 2, dtype=torch.bool)
    inst.scores = torch.tensor([1.0, 0.25, 0.2])
    inst.pred_classes = torch.tensor([2, 0, 1])
    masks, probs = masks_from_output({"instances": inst}, num_classes=3, score_threshold=0.25)
    assert masks.shape == (2, 2, 2)
    expected = torch.tensor([[0.0005, 0.0005, 0.999], [0.25, 0.375, 0.375]])
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)
    inst.pred_classes = torch.tensor([2, 3, 1])
    masks, probs = masks_from_output({"instances": inst}, num_classes=3)
    assert masks.shape == (3, 2, 2) and probs is None


def test_seen_classes_match_by_synonym_whatever_the_case():
    """A vocabulary class is seen when one of its comma-separated synonyms, compared without case and
    surrounding spaces, is a synonym of a seen class."""
    vocabulary = ["Dog, Puppy", "cat", "sky, heaven", "tree"]
    seen = seen_class_mask(vocabulary, ["puppy", " CAT ", "Heaven, firmament"])
    assert seen.tolist() == [True, True, True, False]
    assert seen_class_mask(vocabulary, None).tolist() == [False] * 4
