"""pixelclip.modeling.postprocess: K×H×W resizing and the arg-max of bilinear upsampling without it."""
import pytest
import torch
import torch.nn.functional as F

from pixelclip.modeling.postprocess import _linear_taps, resize_logits, upsample_argmax


def _reference(logits: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0)


def _smooth_logits(num_classes: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Spatially smooth scores around 0.2 with small class differences, like CLIP cosine logits."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, num_classes, max(h // 6, 2), max(w // 6, 2), generator=g)
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
    return 0.2 + 0.05 * fine + 0.002 * torch.randn(num_classes, h, w, generator=g)


@pytest.mark.parametrize("in_size,out_size", [(64, 683), (64, 512), (20, 64), (13, 701), (30, 7), (5, 5), (1, 9)])
def test_linear_taps_reproduce_pytorch_weights(in_size, out_size):
    # Resizing the identity (one channel per source sample) exposes PyTorch's weights exactly.
    eye = torch.eye(in_size)[None, :, :, None]
    weights = F.interpolate(eye, size=(out_size, 1), mode="bilinear", align_corners=False)[0, :, :, 0]
    index, w0, w1 = _linear_taps(in_size, out_size, "cpu")
    ours = torch.zeros(in_size + 1, out_size)
    cols = torch.arange(out_size)
    ours[index, cols] += w0
    ours[index + 1, cols] += w1
    ours[in_size - 1] += ours[in_size]  # the edge-padded sample is the last one
    assert torch.equal(ours[:in_size], weights)


@pytest.mark.parametrize(
    "num_classes,low,size",
    [(150, (64, 64), (512, 683)), (847, (32, 40), (240, 320)), (3, (7, 5), (77, 31)), (20, (64, 64), (64, 64)),
     (171, (33, 20), (20, 700)), (1, (4, 4), (9, 13)), (12, (16, 16), (10, 6))],
)
def test_upsample_argmax_equals_full_upsampling(num_classes, low, size):
    logits = _smooth_logits(num_classes, *low, seed=num_classes)
    ours = upsample_argmax(logits, size)
    full = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    assert ours.shape == size and ours.dtype == torch.int64
    # Only a tie at float precision could differ (PyTorch's own contiguous and channels-last kernels
    # round differently); none occurs on these scores.
    assert int((ours != full.argmax(0)).sum()) == 0


def test_upsample_argmax_handles_channels_last_views_and_small_blocks():
    logits = _smooth_logits(150, 40, 40, seed=3)
    channels_last = logits.permute(1, 2, 0).contiguous().permute(2, 0, 1)  # as the model's einsum gives
    expected = _reference(logits, (300, 410))
    assert torch.equal(upsample_argmax(channels_last, (300, 410)), expected)
    assert torch.equal(upsample_argmax(logits, (300, 410), block_rows=1, max_elements=1000), expected)


def test_upsample_argmax_breaks_ties_like_argmax():
    logits = _smooth_logits(6, 8, 8, seed=1) * 0.1
    logits[4] = logits[1] = 1.0 + _smooth_logits(1, 8, 8, seed=2)[0]  # a duplicated class name
    labels = upsample_argmax(logits, (30, 30))
    assert torch.equal(labels, _reference(logits, (30, 30)))
    assert set(labels.unique().tolist()) == {1}


def test_upsample_argmax_rejects_wrong_shape():
    with pytest.raises(ValueError, match="K×h×w"):
        upsample_argmax(torch.zeros(2, 3, 4, 5), (8, 8))


def test_resize_logits_batches_by_size_and_keeps_order():
    logits = [_smooth_logits(5, 8, 8, seed=s) for s in range(3)]
    sizes = [(20, 30), (16, 16), (20, 30)]
    out = resize_logits(logits, sizes)
    for lg, size, got in zip(logits, sizes, out):
        expected = F.interpolate(lg[None], size=size, mode="bilinear", align_corners=False)[0]
        assert got.shape == (5, *size)
        assert torch.allclose(got, expected, atol=1e-6)


def test_upsample_argmax_on_piecewise_constant_logits_and_exact_ties():
    # constant maps: inside every cell the winner's smallest and largest corners are equal (the pruning must
    # keep a class whose largest corner only equals the floor)
    constant = torch.tensor([0.1, 0.7, 0.3]).view(3, 1, 1).expand(3, 6, 8).contiguous()
    assert torch.equal(upsample_argmax(constant, (25, 31)), torch.ones(25, 31, dtype=torch.int64))
    # regions of constant scores, with exact ties between classes 2 and 3 on the right, and 0 and 1 on a strip
    logits = torch.zeros(4, 8, 8)
    logits[0, :, :4] = 0.5
    logits[1, :2, :4] = 0.5  # tie with class 0 on the top-left strip
    logits[2, :, 4:] = 0.25
    logits[3, :, 4:] = 0.25  # tie with class 2
    for size in ((8, 8), (32, 32), (19, 45), (5, 3)):
        labels = upsample_argmax(logits, size)
        assert torch.equal(labels, _reference(logits, size)), size
    labels = upsample_argmax(logits, (32, 32))
    assert labels[0, 0] == 0 and labels[-1, 0] == 0 and labels[0, -1] == 2 and labels[-1, -1] == 2
    assert set(labels.unique().tolist()) == {0, 2}  # ties go to the lower class id, as argmax
