"""Sinkhorn balance (also across processes), mask pooling and cluster targets."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from pixelclip.modeling.clustering import cluster_targets, resize_masks, sinkhorn
from pixelclip.modeling.pooling import pool_mask_features, pool_upsampled_features


def test_sinkhorn_rows_sum_to_one_and_clusters_are_balanced():
    torch.manual_seed(0)
    logits = torch.randn(600, 16) * 2
    q = sinkhorn(logits, num_iters=3)
    assert torch.allclose(q.sum(1), torch.ones(600), atol=1e-3)  # each mask: mass 1
    assert torch.allclose(q.sum(0) / 600, torch.full((16,), 1 / 16), atol=1e-3)  # each cluster: 1/K


def test_sinkhorn_survives_large_logit_scale():
    torch.manual_seed(0)
    q = sinkhorn(100 * F.normalize(torch.randn(50, 64), dim=-1), num_iters=3)
    assert torch.isfinite(q).all() and torch.allclose(q.sum(1), torch.ones(50), atol=1e-4)
    assert sinkhorn(torch.zeros(0, 8)).shape == (0, 8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, logits, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        part = logits.split(SPLIT)[rank]
        out[rank] = sinkhorn(part, num_iters=3)
    finally:
        dist.destroy_process_group()


SPLIT = [13, 27]  # unequal shares: each process's own mask count differs from the global one


def test_sinkhorn_two_gloo_processes_equal_one_process():
    torch.manual_seed(0)
    logits = torch.randn(40, 8) * 3
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), logits, out), nprocs=2, join=True)
    split = torch.cat([out[0], out[1]])
    single = sinkhorn(logits, num_iters=3)
    assert torch.allclose(split, single, atol=1e-6)
    assert torch.equal(split.argmax(1), single.argmax(1))


def test_pool_mask_features_is_masked_mean():
    feats = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True
    pooled = pool_mask_features(feats, masks)
    assert torch.allclose(pooled[0], feats[:, :2, :2].reshape(2, -1).mean(1))


@pytest.mark.parametrize("grid,size", [((20, 20), (256, 256)), ((6, 7), (32, 45)), ((5, 5), (5, 5)), ((9, 4), (3, 8))])
def test_pooling_on_the_source_grid_equals_pooling_the_upsampled_features(grid, size):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(16, *grid, generator=g, dtype=torch.float64)
    masks = torch.rand(7, *size, generator=g) > torch.rand(7, 1, 1, generator=g)  # from sparse to dense
    masks[0] = False  # an empty mask averages to 0, as before
    masks[1] = False
    masks[1, -1, -1] = True  # a corner pixel: the edge taps
    upsampled = F.interpolate(feats[None], size=size, mode="bilinear", align_corners=False)[0]
    expected = pool_mask_features(upsampled, masks)
    assert torch.allclose(pool_upsampled_features(feats, masks), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape,size", [((640, 640), 256), ((97, 130), 32), ((30, 20), 64), ((7, 7), 7)])
def test_resize_masks_is_nearest_interpolation(shape, size):
    masks = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1)) > 0.7
    expected = F.interpolate(masks[None].float(), size=(size, size), mode="nearest")[0] > 0.5
    expected = expected[expected.flatten(1).sum(1) > 1]
    assert torch.equal(resize_masks(masks, size), expected)


def test_resize_masks_drops_vanishing_masks_and_keeps_the_order():
    masks = torch.zeros(4, 64, 64, dtype=torch.bool)
    masks[0, :32] = True  # large
    masks[1, 0, 0] = True  # vanishes at 8×8
    masks[2, :16, :16] = True  # medium
    masks[3, 40:, 40:] = True  # 24×24 -> 3×3 at 8×8
    assert resize_masks(masks[:0], 8).shape == (0, 8, 8)
    every = resize_masks(masks, 8)  # every mask left, in the given order (the release)
    assert [int(m.sum()) for m in every] == [32, 4, 9]


def test_cluster_targets_are_unions_of_assigned_masks():
    # two prompts; the features left of column 4 point to prompt 0, right of it to prompt 1
    c, r = 2, 8
    feats = torch.zeros(1, c, r, r)
    feats[0, 0, :, :4] = 1.0
    feats[0, 1, :, 4:] = 1.0
    prompts = torch.eye(2)
    masks = torch.zeros(3, r, r, dtype=torch.bool)
    masks[0, :4, :4] = True  # left -> prompt 0
    masks[1, 4:, :4] = True  # left -> prompt 0
    masks[2, :, 4:] = True  # right -> prompt 1
    targets, valid, assignment = cluster_targets(feats, [masks], prompts, eps=100.0, num_iters=3)
    assert assignment.tolist() == [0, 0, 1]
    assert torch.equal(targets[0, 0].bool(), masks[0] | masks[1])
    assert torch.equal(targets[0, 1].bool(), masks[2])
    assert valid.all()


def test_image_without_masks_is_skipped():
    feats = torch.randn(2, 4, 4, 4)
    masks = [torch.zeros(0, 8, 8, dtype=torch.bool), torch.ones(1, 8, 8, dtype=torch.bool)]
    targets, valid, assignment = cluster_targets(feats, masks, torch.randn(3, 4))
    assert targets[0].sum() == 0 and not valid[0].any()
    assert valid[1].all() and len(assignment) == 1
    targets, valid, assignment = cluster_targets(feats, [masks[0], masks[0]], torch.randn(3, 4))
    assert targets.sum() == 0 and len(assignment) == 0


def _swav_reference(logits: torch.Tensor, num_iters: int) -> torch.Tensor:
    """Sinkhorn-Knopp as in SwAV (Caron et al. 2020, Alg. 1 / main_swav.py) on PixelCLIP's softmax of the logits,
    written out plainly in float64: Q (K×N) sums to 1; then, num_iters times, every cluster's row to 1/K and
    every mask's column to 1/N; finally columns scaled to sum to 1."""
    q = torch.softmax(logits.double(), dim=1).t()
    k, n = q.shape
    q = q / q.sum()
    for _ in range(num_iters):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / n
    return (q * n).t()


@pytest.mark.parametrize("num_iters", [1, 3, 5])
def test_sinkhorn_equals_the_swav_reference_for_exactly_the_given_iterations(num_iters):
    torch.manual_seed(0)
    logits = torch.randn(30, 6) * 4
    expected = _swav_reference(logits, num_iters)
    q = sinkhorn(logits, num_iters=num_iters)
    assert q.dtype == torch.float32
    assert torch.allclose(q.double(), expected, rtol=1e-6, atol=1e-7)
    for other in (num_iters - 1, num_iters + 1):  # one iteration more or less is far outside the tolerance
        assert (_swav_reference(logits, other) - expected).abs().max() > 1e-3


def test_sinkhorn_at_eps_100_needs_float64():
    """ε = 100 logits: a prompt opposite to every mask has softmax mass e^-200 per mask, which is 0 in float32,
    so a float32 Sinkhorn divides 0 by 0; in float64 the balancing assigns masks to it."""
    angles = torch.tensor([0.0, 0.2, 1.4, 1.5, 0.1, 1.3])
    masks = torch.stack([angles.cos(), angles.sin()], dim=1)
    prompts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    logits = 100.0 * masks @ prompts.t()
    expected = _swav_reference(logits, 3)
    assert expected.argmax(1).tolist() == [0, 0, 1, 2, 0, 1]
    float32 = torch.softmax(logits, dim=1).t()  # the same loop in float32
    float32 = float32 / float32.sum()
    float32 = float32 / float32.sum(dim=1, keepdim=True)
    assert not torch.isfinite(float32).all()
    q = sinkhorn(logits, num_iters=3)
    assert torch.isfinite(q).all() and torch.allclose(q.double(), expected, rtol=1e-6, atol=1e-7)
    assert q.argmax(1).tolist() == [0, 0, 1, 2, 0, 1]


def test_eps_scales_the_clustering_logits_and_can_change_the_assignment():
    """Four masks whose features are unit vectors at 0, 0.3, 0.5 and 0.7 rad, two prompts at 0 and π/2: every
    mask is nearer prompt 0. Balanced by 3 Sinkhorn iterations (reference above): with ε = 1 the mask at 0.5 rad
    goes to prompt 1, with ε = 100 it stays with prompt 0."""
    angles = torch.tensor([0.0, 0.3, 0.5, 0.7])
    r = 8
    feats = torch.zeros(1, 2, r, r)
    masks = torch.zeros(4, r, r, dtype=torch.bool)
    for j, a in enumerate(angles):
        feats[0, 0, 2 * j:2 * j + 2] = a.cos()
        feats[0, 1, 2 * j:2 * j + 2] = a.sin()
        masks[j, 2 * j:2 * j + 2] = True
    prompts = torch.tensor([[3.0, 0.0], [0.0, 0.5]])  # norms do not matter: cosine
    unit = torch.stack([angles.cos(), angles.sin()], 1)
    for eps, expected in ((1.0, [0, 0, 1, 1]), (100.0, [0, 0, 0, 1])):
        assert _swav_reference(eps * unit @ torch.eye(2), 3).argmax(1).tolist() == expected
        _, _, assignment = cluster_targets(feats, [masks], prompts, eps=eps, num_iters=3)
        assert assignment.tolist() == expected, eps
