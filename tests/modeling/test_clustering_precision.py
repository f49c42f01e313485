"""The clustering under AMP: float16 / bfloat16 teacher features, or an enclosing autocast, give the targets
of float32 inputs exactly (it runs in float32 with autocast off). The motivating case: a 256×256 mask sums
65,536 values, past float16's largest finite number (65,504)."""
import pytest
import torch

import pixelclip.modeling.clustering as clustering_module
from pixelclip.modeling.clustering import cluster_targets
from pixelclip.modeling.pooling import masked_average, pool_upsampled_features

R = 256


def _inputs(dtype=torch.float32):
    """Features ≈ 1 (2 images, C = 8, 16×16 grid), K = 4 prompts, per image a full 256×256 mask and two halves;
    values rounded to bfloat16 (8-bit mantissa, in float16's range: float16 holds them too), so every dtype holds
    the same numbers."""
    g = torch.Generator().manual_seed(0)
    feats = (1.0 + 0.1 * torch.randn(2, 8, 16, 16, generator=g)).bfloat16().to(dtype)
    prompts = torch.randn(4, 8, generator=g).bfloat16().to(dtype)
    full = torch.ones(R, R, dtype=torch.bool)
    left = torch.zeros(R, R, dtype=torch.bool)
    left[:, :R // 2] = True
    masks = [torch.stack([full, left, ~left]) for _ in range(2)]
    return feats, masks, prompts


def _recorded(monkeypatch):
    """cluster_targets that also returns the Sinkhorn logits it computed."""
    seen = {}
    real = clustering_module.sinkhorn

    def sinkhorn(logits, num_iters):
        seen["logits"] = logits.clone()
        return real(logits, num_iters)

    monkeypatch.setattr(clustering_module, "sinkhorn", sinkhorn)

    def run(*args):
        return (*cluster_targets(*args), seen["logits"])
    return run


def test_float16_sum_of_a_full_mask_overflows():
    assert torch.isinf(torch.ones(R, R, dtype=torch.float16).sum())  # why the sums must not run in float16


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_features_give_the_float32_targets(dtype, monkeypatch):
    run = _recorded(monkeypatch)
    reference = run(*_inputs(torch.float32))
    out = run(*_inputs(dtype))
    assert torch.isfinite(out[3]).all()
    for a, b in zip(out, reference):
        assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_an_enclosing_autocast_changes_nothing(dtype, monkeypatch):
    run = _recorded(monkeypatch)
    reference = run(*_inputs())
    with torch.autocast("cpu", dtype=dtype):
        out = run(*_inputs())
    assert torch.isfinite(out[3]).all()
    for a, b in zip(out, reference):
        assert torch.equal(a, b)


def test_pooling_sums_in_float32_and_returns_the_features_dtype():
    feats, masks, _ = _inputs(torch.float16)
    ref = pool_upsampled_features(feats[0].float(), masks[0])
    out = pool_upsampled_features(feats[0], masks[0])
    assert out.dtype == torch.float16 and torch.equal(out, ref.half())
    grid = torch.ones(3, 300, 300)  # 90,000 pixels per mask: an overflowing float16 sum
    with torch.autocast("cpu", dtype=torch.float16):
        avg = masked_average(torch.ones(8, 300, 300, dtype=torch.float16), grid, 1.0)
    assert avg.dtype == torch.float16 and torch.equal(avg, torch.ones(3, 8, dtype=torch.float16))
