"""Mask-average pooling and cosine scoring of dense features (pixelclip/modeling/pooling.py, scoring.py),
by hand on tiny tensors. The meta-architecture built on them is tested in
tests/projects/mask_classification/."""
import math

import torch

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
