"""Mask-average pooling and cosine scoring of dense features (pixelclip/modeling/pooling.py, scoring.py),
by hand on tiny tensors. The meta-architecture built on them is tested in
tests/projects/mask_classification/."""
import math

import torch
import torch.nn.functional as F

from pixelclip.modeling.pooling import dense_mask_embeddings, mask_pool
from pixelclip.modeling.scoring import cosine_logits


def test_mask_pool_one_hot_and_area_weights():
    features = torch.randn(5, 4, 6)
    masks = torch.zeros(2, 4, 6, dtype=torch.bool)
    masks[0, 2, 3] = True
    masks[1, :, :3] = True
    pooled, valid = mask_pool(features, masks)
    torch.testing.assert_close(pooled[0], features[:, 2, 3])
    torch.testing.assert_close(pooled[1], features[:, :, :3].mean(dim=(1, 2)))
    assert valid.tolist() == [True, True]
    # masks at 4× the grid: area weights; a 1-pixel mask still lands in its cell
    big = torch.zeros(2, 16, 24, dtype=torch.bool)
    big[0, 8:12, 12:16] = True  # exactly cell (2, 3)
    big[1, 0, 0] = True
    pooled, valid = mask_pool(features, big)
    torch.testing.assert_close(pooled[0], features[:, 2, 3])
    torch.testing.assert_close(pooled[1], features[:, 0, 0])
    empty = torch.zeros(1, 4, 6, dtype=torch.bool)
    assert mask_pool(features, empty)[1].tolist() == [False]
    # dense features resized to the pooling grid first
    emb, _ = dense_mask_embeddings(torch.randn(5, 2, 3), masks, pool_resolution=8)
    assert emb.shape == (2, 5)


def test_cosine_logits_by_hand():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    text = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    c = 10 / math.sqrt(2)
    torch.testing.assert_close(cosine_logits(embeddings, text, 10.0), torch.tensor([[10.0, 0.0], [c, c]]))


def test_dense_cosine_logits_by_hand():
    features = torch.tensor([[[[3.0, 0.0]], [[4.0, 2.0]]]])  # 1×2×1×2: pixels (3, 4) and (0, 2)
    text = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    expected = torch.tensor([[[[0.6, 0.0]], [[0.8, 1.0]]]])  # 1×K×1×2
    torch.testing.assert_close(cosine_logits(features, text), expected)
    torch.testing.assert_close(cosine_logits(features, text, 10.0), 10 * expected)


def test_positive_mask_pool_is_fcclips_mean_where_the_logits_are_positive():
    from pixelclip.modeling.pooling import positive_mask_pool

    features = torch.arange(12.0).view(1, 2, 2, 3)
    logits = torch.full((1, 2, 2, 3), -1.0)
    logits[0, 0, 0, :2] = 1.0  # pixels 0 and 1
    pooled = positive_mask_pool(features, logits)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([0.5, 6.5]))
    torch.testing.assert_close(pooled[0, 1], torch.zeros(2))  # empty mask


def test_mask_pool_weights_partly_covered_cells_by_their_covered_fraction():
    """An 8×8 mask over a 2×2 grid (4×4 pixels per cell) covering cell (0, 0) fully and half of cell (0, 1):
    weights 1 and 1/2, so the feature is (f00 + f01 / 2) / 1.5; a mask of 4 pixels inside one cell (weight 1/4) is that cell's feature."""
    features = torch.tensor([[[1.0, 4.0], [10.0, 100.0]], [[-2.0, 2.0], [0.0, 0.0]]])  # 2×2×2
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :4, :6] = True
    masks[1, 6:, 6:] = True
    pooled, valid = mask_pool(features, masks)
    torch.testing.assert_close(pooled[0], (features[:, 0, 0] + 0.5 * features[:, 0, 1]) / 1.5)
    torch.testing.assert_close(pooled[1], features[:, 1, 1])
    assert valid.tolist() == [True, True]


def test_dense_mask_embeddings_pool_the_bilinearly_resized_features():
    """PixelCLIP's inference grid: features resized with F.interpolate (bilinear, align_corners False) to
    pool_resolution², masks area-resampled onto it (a 1×1 grid too); pool_resolution 0 pools on the features' own
    grid."""
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(3, 2, 3, generator=g)
    masks = torch.rand(4, 12, 12, generator=g) > 0.5
    resized = F.interpolate(dense[None], size=(6, 6), mode="bilinear", align_corners=False)[0]
    weights = masks.float().view(4, 6, 2, 6, 2).mean(dim=(2, 4))  # each 2×2 block of pixels is one cell
    expected = torch.einsum("nhw,chw->nc", weights, resized) / weights.sum(dim=(1, 2))[:, None]
    emb, valid = dense_mask_embeddings(dense, masks, pool_resolution=6)
    torch.testing.assert_close(emb, expected, rtol=1e-5, atol=1e-6)
    assert valid.all()
    on_grid = masks.float().view(4, 2, 6, 3, 4).mean(dim=(2, 4))  # 6×4 pixels per cell of the 2×3 grid
    emb, _ = dense_mask_embeddings(dense, masks, pool_resolution=0)
    torch.testing.assert_close(emb, torch.einsum("nhw,chw->nc", on_grid, dense) / on_grid.sum(dim=(1, 2))[:, None],
                               rtol=1e-5, atol=1e-6)
    emb, _ = dense_mask_embeddings(dense, masks, pool_resolution=1)  # one cell: every mask gets its feature
    cell = F.interpolate(dense[None], size=(1, 1), mode="bilinear", align_corners=False)[0, :, 0, 0]
    torch.testing.assert_close(emb, cell.expand(4, 3), rtol=1e-5, atol=1e-6)


def test_positive_mask_pool_resizes_mask_logits_bilinearly_and_excludes_zero():
    """Mask logits at another size are resized to the features' with F.interpolate (bilinear, align_corners False)
    before the > 0 test; a logit of exactly 0 is outside the mask."""
    from pixelclip.modeling.pooling import positive_mask_pool

    g = torch.Generator().manual_seed(0)
    features = torch.randn(1, 3, 4, 6, generator=g)
    logits = torch.randn(1, 2, 2, 3, generator=g)
    inside = F.interpolate(logits, size=(4, 6), mode="bilinear", align_corners=False) > 0
    expected = torch.stack([features[0][:, m].mean(1) for m in inside[0]])
    torch.testing.assert_close(positive_mask_pool(features, logits)[0], expected)
    zero = torch.zeros(1, 1, 4, 6)
    zero[0, 0, 0, 0] = 1.0  # the one positive pixel; the others are exactly 0
    torch.testing.assert_close(positive_mask_pool(features, zero)[0, 0], features[0, :, 0, 0])
