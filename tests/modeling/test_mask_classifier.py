"""Mask-average pooling and cosine scoring of dense features (pixelclip/modeling/mask_classifier.py),
by hand on tiny tensors. The meta-architecture built on them is tested in
tests/projects/mask_classification/."""
import math

import torch

from pixelclip.modeling.mask_classifier import cosine_logits, dense_mask_embeddings, mask_pool


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
