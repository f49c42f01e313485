"""pixelclip/modeling/scoring.py: ``scale · cos(f, t_k)`` by hand, with text embeddings that are neither
unit-norm nor orthogonal (each row normalised over C, not over the K rows)."""
import math

import torch

from pixelclip.modeling.scoring import cosine_logits

# K = 3 text embeddings of different norms; unit rows (1, 1)/√2, (1, 0), (0, -1)
TEXT = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, -5.0]])
R = 1 / math.sqrt(2)


def test_cosine_logits_of_embeddings_by_hand():
    embeddings = torch.tensor([[3.0, 4.0], [0.0, -2.0]])  # unit (0.6, 0.8) and (0, -1)
    expected = torch.tensor([[1.4 * R, 0.6, -0.8], [-R, 0.0, 1.0]])
    torch.testing.assert_close(cosine_logits(embeddings, TEXT), expected)
    torch.testing.assert_close(cosine_logits(embeddings, TEXT, 100.0), 100 * expected)


def test_dense_cosine_logits_by_hand():
    features = torch.tensor([[3.0, 0.0], [4.0, -2.0]]).view(1, 2, 1, 2)  # 1×C×1×2: pixels (3, 4) and (0, -2)
    expected = torch.tensor([[1.4 * R, -R], [0.6, 0.0], [-0.8, 1.0]]).view(1, 3, 1, 2)  # 1×K×1×2
    torch.testing.assert_close(cosine_logits(features, TEXT), expected)
    torch.testing.assert_close(cosine_logits(features, TEXT, 100.0), 100 * expected)
