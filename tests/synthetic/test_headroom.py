"""The headroom diagnostic on a hand-built case whose three mIoUs are computed by hand below."""
import numpy as np
import pytest
import torch

from pixelclip.synthetic.headroom import HeadroomMeter, mask_pooled_labels, miou_from_confusion, regions_to_masks

E0, E1 = (1.0, 0.0), (0.0, 1.0)  # class 0 / class 1 directions
TEXT = torch.tensor([E0, E1])
# 2×4 image. Ground truth: left half class 0, right half class 1, pixel (1, 3) ignored.
LABELS = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 255]])
REGIONS = np.array([[1, 1, 2, 2],
                    [1, 1, 2, 2]])
# Dense features: one wrong pixel per region, (1, 1) and (0, 3).
FEATS = torch.tensor([[E0, E0, E1, E0],
                      [E0, E1, E1, E1]]).permute(2, 0, 1)  # C×H×W
# Class-agnostic masks: A (3 px) and C (3 px) and B (2 px, inside A's column 2 and below it).
MASK_A = np.array([[1, 1, 1, 0], [0, 0, 0, 0]], bool)  # mean (2/3, 1/3) -> class 0
MASK_B = np.array([[0, 0, 1, 0], [0, 0, 1, 0]], bool)  # mean (0, 1) -> class 1; smaller, so it wins at (0, 2)
MASK_C = np.array([[0, 1, 0, 0], [1, 1, 0, 0]], bool)  # mean (2/3, 1/3) -> class 0
# (0, 3) is covered by no mask: it keeps its dense (wrong) class 0.


def test_three_mious_of_a_constructed_case():
    meter = HeadroomMeter(num_classes=2, ignore_label=255)
    preds = meter.add(FEATS, TEXT, LABELS, REGIONS, np.stack([MASK_A, MASK_B, MASK_C]))
    assert preds["dense"].tolist() == [[0, 0, 1, 0], [0, 1, 1, 1]]
    assert preds["region_pooled"].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
    assert preds["mask_pooled"].tolist() == [[0, 0, 1, 0], [0, 0, 1, 1]]
    res = meter.result()
    # dense: class 0 tp 3, gt 4, predicted 4 -> 3/5; class 1 tp 2, gt 3, predicted 3 -> 2/4; mean 55
    assert res["dense"] == pytest.approx(55.0)
    # region-pooled: every evaluated pixel right
    assert res["region_pooled"] == pytest.approx(100.0)
    # mask-pooled: class 0 tp 4, gt 4, predicted 5 -> 4/5; class 1 tp 2, gt 3, predicted 2 -> 2/3
    assert res["mask_pooled"] == pytest.approx(100 * (0.8 + 2 / 3) / 2, abs=0.01)
    assert res["region_pooled_gain"] == pytest.approx(45.0)
    assert res["num_images"] == 1


def test_pooling_averages_raw_features_not_unit_vectors():
    # one pixel with a large norm outweighs three unit pixels of the other class, as in PixelCLIP's mask pooling
    feats = torch.tensor([[E0, E0, E0, (0.0, 4.0)]]).permute(2, 0, 1)  # C×1×4, mean (0.75, 1.0)
    out = mask_pooled_labels(feats, TEXT, torch.ones(1, 1, 4, dtype=torch.bool))
    assert out.tolist() == [[1, 1, 1, 1]]


def test_miou_counts_classes_present_in_the_ground_truth():
    conf = np.array([[2, 1, 0],   # class 0: tp 2, gt 3, predicted 2 -> 2/3
                     [0, 0, 0],   # class 1: absent from the ground truth (predicted once) -> not averaged
                     [0, 1, 1]])  # class 2: tp 1, gt 2, predicted 1 -> 1/2
    assert miou_from_confusion(conf) == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)


def test_regions_to_masks_and_size_check():
    masks = regions_to_masks(np.array([[0, 2], [2, 5]]))
    assert masks.tolist() == [[[False, True], [True, False]], [[False, False], [False, True]]]
    with pytest.raises(ValueError, match="share H×W"):
        HeadroomMeter(2).add(FEATS, TEXT, LABELS[:, :2], REGIONS[:, :2])
