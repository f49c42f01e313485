"""Cluster diagnostics on hand-computed cases; they reach D2's EventStorage during training steps."""
import math

import pytest
import torch
from detectron2.utils.events import EventStorage

from pixelclip.modeling.cluster_stats import batch_sums, blind_bce, cluster_stats, log_cluster_stats, stats_from_sums


def _h(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_blind_bce_is_the_mean_entropy_of_per_cluster_frequencies():
    valid = torch.tensor([[[True, True], [True, False]]])  # 3 valid pixels
    targets = torch.tensor([[[[1., 0.], [0., 1.]],    # cluster 0: 1 of the 3 valid pixels (the 4th is not valid)
                             [[0., 1.], [1., 0.]],    # cluster 1: 2 of 3
                             [[0., 0.], [0., 0.]]]])  # cluster 2: none -> entropy 0
    assert float(blind_bce(targets, valid)) == pytest.approx((_h(1 / 3) + _h(2 / 3) + 0.0) / 3, abs=1e-6)
    assert float(blind_bce(targets, torch.zeros_like(valid))) == 0.0


def test_cluster_stats_by_hand():
    assignment = torch.tensor([0, 0, 2, 0])
    prompts = torch.tensor([[1., 0.], [0., 1.], [2., 2.]])
    classes = torch.tensor([[1., 0.], [0., -1.]])
    s = cluster_stats(assignment, 3, prompts, classes)
    assert s["clusters_used"] == 2 and s["largest_cluster_share"] == pytest.approx(0.75)
    # pairwise cosines 0, 1/√2, 1/√2 -> mean 0.4714
    assert s["prompt_cosine"] == pytest.approx(math.sqrt(2) / 3, abs=1e-6)
    # best class cosine per prompt: 1, 0, 1/√2 (all nearest to class 0)
    assert s["text_alignment"] == pytest.approx((1 + 0 + 1 / math.sqrt(2)) / 3, abs=1e-6)
    assert s["classes_nearest"] == 1


def test_log_cluster_stats_writes_event_storage():
    masks = [torch.zeros(2, 4, 4, dtype=torch.bool), torch.zeros(1, 4, 4, dtype=torch.bool)]
    targets = torch.zeros(2, 3, 4, 4)
    targets[:, 0] = 1.0
    with EventStorage(0) as storage:
        log_cluster_stats(masks, torch.tensor([0, 0, 1]), targets, torch.ones(2, 4, 4, dtype=torch.bool),
                          torch.eye(3), torch.eye(3)[:2])
        values = {k: v[0] for k, v in storage.latest().items()}
    assert values["pixelclip/masks_per_image"] == 1.5
    assert values["pixelclip/blind_loss"] == 0.0  # cluster 0 covers every pixel, the others none
    assert values["pixelclip/clusters_used"] == 2 and values["pixelclip/largest_cluster_share"] == pytest.approx(2 / 3)
    assert values["pixelclip/prompt_cosine"] == 0.0 and values["pixelclip/classes_nearest"] == 2
    log_cluster_stats(masks, torch.tensor([0, 0, 1]), targets, torch.ones(2, 4, 4, dtype=torch.bool), torch.eye(3))


def test_summed_shares_give_the_statistics_of_the_whole_batch():
    # what the all-reduce does across ranks: each rank's batch_sums, added, must give the global batch's numbers
    # (computed here by blind_bce and cluster_stats on the concatenated batch), not rank 0's
    g = torch.Generator().manual_seed(0)
    k, r = 5, 6
    masks = [torch.rand(n, r, r, generator=g) > 0.6 for n in (3, 1, 4, 2)]
    assignment = torch.randint(0, k, (10,), generator=g)
    targets = (torch.rand(4, k, r, r, generator=g) > 0.7).float()
    valid = torch.rand(4, r, r, generator=g) > 0.3
    sizes = [4, 6]  # masks of images 0-1 and 2-3
    shares = [batch_sums(masks[:2], assignment[:4], targets[:2], valid[:2]),
              batch_sums(masks[2:], assignment[4:], targets[2:], valid[2:])]
    total = stats_from_sums(shares[0] + shares[1], k)
    whole = cluster_stats(assignment, k, torch.eye(k))
    assert total["masks_per_image"] == 10 / 4
    assert total["blind_loss"] == pytest.approx(float(blind_bce(targets, valid)), abs=1e-6)
    assert total["clusters_used"] == whole["clusters_used"]
    assert total["largest_cluster_share"] == pytest.approx(whole["largest_cluster_share"], abs=1e-12)
    first = stats_from_sums(shares[0], k)  # rank 0's share alone: other numbers (what was logged before)
    assert first["masks_per_image"] == sizes[0] / 2 and first != total


def test_edge_cases_give_defined_numbers():
    """Two prompts: prompt_cosine is their one cosine. No masks: no cluster-usage numbers (nothing to share out).
    No valid pixel or no image: blind_loss and masks_per_image are 0, not NaN. An empty vocabulary: no text numbers."""
    prompts = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    s = cluster_stats(torch.tensor([1, 1, 1]), 2, prompts, torch.zeros(0, 2))
    assert s == pytest.approx({"clusters_used": 1.0, "largest_cluster_share": 1.0, "prompt_cosine": 1 / math.sqrt(2)})
    assert cluster_stats(torch.zeros(0, dtype=torch.long), 2, prompts) == pytest.approx({"prompt_cosine": 1 / math.sqrt(2)})
    k = 3
    no_masks = batch_sums([torch.zeros(0, 4, 4, dtype=torch.bool)], torch.zeros(0, dtype=torch.long),
                          torch.zeros(1, k, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool))
    assert no_masks.tolist() == [0.0, 1.0, 0.0] + [0.0] * (2 * k)
    assert stats_from_sums(no_masks, k) == {"masks_per_image": 0.0, "blind_loss": 0.0}
    assert stats_from_sums(torch.zeros(3 + 2 * k, dtype=torch.float64), k) == {"masks_per_image": 0.0, "blind_loss": 0.0}
