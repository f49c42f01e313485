"""pixelclip.modeling.postprocess: K×H×W resizing and the arg-max of bilinear upsampling without it."""
import pytest
import torch
import torch.nn.functional as F

from pixelclip.modeling.postprocess import _linear_taps, argmax_labels, few_threads, resize_logits, upsample_argmax


def _smooth(num_classes: int, h: int, w: int, seed: int, batch: int = 1) -> torch.Tensor:
    """Spatially smooth scores of mean 0 and std about 1 (bicubic from a coarse grid)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, num_classes, max(h // 6, 2), max(w // 6, 2), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


def _regime(name: str, num_classes: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """1×K×h×w scores of one of the regimes of tools/benchmark.py --tasks eval (and harder ones)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, num_classes, h, w, generator=g)
    if name == "random":  # like CLIP cosines: about 0.2, small smooth class differences, a little noise
        return 0.2 + 0.05 * _smooth(num_classes, h, w, seed) + 0.002 * noise
    if name == "near_tie":  # every class within 1e-3 of the others at every pixel, spatially smooth
        s = _smooth(num_classes, h, w, seed)
        return 0.2 + 1e-3 * (s - s.amin(1, keepdim=True)) / (s.amax(1, keepdim=True) - s.amin(1, keepdim=True))
    if name == "near_tie_noise":  # within 1e-3, no spatial structure at all (every cell is a boundary)
        return 0.2 + 1e-3 * noise
    if name == "separated":  # one class per region, 1.0 above the others (within 0.05 of each other)
        regions = torch.randint(0, num_classes, (h // 4 + 1, w // 4 + 1), generator=g)
        regions = regions.repeat_interleave(4, 0).repeat_interleave(4, 1)[:h, :w]
        return 0.2 + 0.05 * noise + F.one_hot(regions, num_classes).permute(2, 0, 1)[None].float()
    if name == "piecewise_constant":  # constant on 3×3 blocks: many equal corners, few distinct values
        blocks = torch.randint(0, 4, (1, num_classes, h // 3 + 1, w // 3 + 1), generator=g).float() / 4
        return blocks.repeat_interleave(3, 2).repeat_interleave(3, 3)[..., :h, :w]
    raise ValueError(name)


def _check_labels(logits: torch.Tensor, size, labels: torch.Tensor) -> None:
    """``labels`` (B×H×W) against ``F.interpolate(logits, size).argmax(1)``.

    The two paths round differently (as PyTorch's own contiguous and channels-last kernels do):
    each interpolated score is within a few float32 ulps of the exact one, so two classes can swap
    order only where their exact scores differ by less than ``eps``. Elsewhere the labels must be
    equal; at the few pixels where they differ, our label's exact score must be within ``eps`` of
    the best one."""
    reference = F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)
    exact = F.interpolate(logits.double(), size=size, mode="bilinear", align_corners=False)  # B×K×H×W
    top2 = exact.topk(min(2, exact.shape[1]), dim=1).values
    gap = top2[:, 0] - top2[:, -1] if exact.shape[1] > 1 else torch.full_like(top2[:, 0], float("inf"))
    eps = 1e-6 * float(logits.abs().max())
    clear = gap > eps
    assert labels.shape == reference.shape and labels.dtype == torch.int64
    assert torch.equal(labels[clear], reference[clear])
    assert torch.equal(labels[clear], exact.argmax(1)[clear])
    # exact ties (classes with equal scores at the cell's corners, as on piecewise-constant maps): the lower id
    tied = gap == 0
    assert torch.equal(labels[tied], exact.argmax(1)[tied])
    shortfall = top2[:, 0] - exact.gather(1, labels[:, None])[:, 0]
    assert float(shortfall.max()) <= eps
    # float ties are rare even where 150 classes lie within 1e-3 (about 3 % of the pixels are within
    # eps of a tie in "near_tie_noise", a few in 10^4 of all pixels change)
    assert int((labels != reference).sum()) <= 1e-3 * labels.numel()


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


@pytest.mark.parametrize("method", ["auto", "sparse", "dense"])
@pytest.mark.parametrize("regime", ["random", "near_tie", "near_tie_noise", "separated", "piecewise_constant"])
def test_upsample_argmax_equals_resize_then_argmax(regime, method):
    logits = _regime(regime, 150, 24, 24)
    size = (150, 221)
    _check_labels(logits, size, upsample_argmax(logits, size, method=method))


@pytest.mark.parametrize("method", ["auto", "sparse", "dense"])
@pytest.mark.parametrize(
    "num_classes,low,size",
    [(847, (16, 20), (64, 80)), (3, (7, 5), (77, 31)), (20, (16, 16), (16, 16)), (12, (33, 20), (20, 70)),
     (1, (4, 4), (9, 13)), (12, (16, 16), (10, 6)), (5, (1, 1), (4, 3))],
)
def test_upsample_argmax_any_sizes_and_vocabularies(num_classes, low, size, method):
    logits = _regime("random", num_classes, *low, seed=num_classes)
    _check_labels(logits, size, upsample_argmax(logits, size, method=method))


@pytest.mark.parametrize("method", ["auto", "sparse", "dense"])
def test_upsample_argmax_breaks_exact_ties_like_argmax(method):
    # Classes 1 and 4 are the same class name twice, ahead of the others in the left half; in the right
    # half, class 2 and 3 tie exactly on a piecewise-constant plateau. argmax takes the lower id.
    logits = 0.1 * _regime("random", 6, 12, 12, seed=1)
    logits[:, 4] = logits[:, 1] = 1.0 + 0.05 * _smooth(1, 12, 12, seed=2)[:, 0]
    logits[:, 1:5, :, 6:] = 0.0
    logits[:, 2:4, :, 6:] = 2.0
    labels = upsample_argmax(logits, (50, 47), method=method)
    reference = F.interpolate(logits, size=(50, 47), mode="bilinear", align_corners=False).argmax(1)
    assert torch.equal(labels, reference)
    assert set(labels.unique().tolist()) == {1, 2}


def test_upsample_argmax_batch_equals_single_images_and_takes_channels_last_views():
    logits = torch.cat([_regime(r, 150, 20, 20, seed=3) for r in ("random", "near_tie_noise", "separated")])
    channels_last = logits.contiguous(memory_format=torch.channels_last)  # as the model's einsum gives
    batch = upsample_argmax(channels_last, (100, 131))
    for i in range(3):
        assert torch.equal(batch[i], upsample_argmax(logits[i], (100, 131)))
    # a small memory bound only changes how the work is split
    assert torch.equal(upsample_argmax(logits, (100, 131), max_elements=1000), batch)
    assert torch.equal(upsample_argmax(logits, (100, 131), method="dense", max_elements=1000),
                       upsample_argmax(logits, (100, 131), method="dense"))


def test_few_threads_restores_the_thread_count():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with few_threads(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError):
            with few_threads(torch.device("cpu")):
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
        upsample_argmax(_regime("random", 5, 8, 8), (20, 20))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_upsample_argmax_rejects_wrong_shape_and_method():
    with pytest.raises(ValueError, match="K×h×w"):
        upsample_argmax(torch.zeros(1, 2, 3, 4, 5), (8, 8))
    with pytest.raises(ValueError, match="method"):
        upsample_argmax(torch.zeros(2, 3, 4), (8, 8), method="fast")


def test_argmax_labels_groups_by_size_and_keeps_order():
    logits = [_regime("random", 5, 8, 8, seed=s)[0] for s in range(3)] + [_regime("random", 5, 6, 9, seed=4)[0]]
    sizes = [(20, 30), (16, 16), (20, 30), (20, 30)]
    for lg, size, got in zip(logits, sizes, argmax_labels(logits, sizes)):
        assert torch.equal(got, upsample_argmax(lg, size))


def test_resize_logits_batches_by_size_and_keeps_order():
    logits = [_regime("random", 5, 8, 8, seed=s)[0] for s in range(3)]
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
        reference = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0)
        assert torch.equal(labels, reference), size
    labels = upsample_argmax(logits, (32, 32))
    assert labels[0, 0] == 0 and labels[-1, 0] == 0 and labels[0, -1] == 2 and labels[-1, -1] == 2
    assert set(labels.unique().tolist()) == {0, 2}  # ties go to the lower class id, as argmax


@pytest.mark.parametrize("method", ["auto", "sparse", "dense"])
def test_two_classes_tied_at_every_output_pixel_give_the_lower_id(method):
    """6 -> 3 columns: output column j samples source column 2j + 0.5, halfway between a column where class 0
    scores 1 (class 1: 0) and one where class 1 scores 1 (class 0: 0), so both interpolate to exactly 0.5 in every
    cell, each of which holds two winners. argmax takes the first maximum: class 0 everywhere."""
    stripes = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0]).expand(4, 6)
    logits = torch.stack([stripes, 1 - stripes])  # 2×4×6
    reference = F.interpolate(logits[None], size=(4, 3), mode="bilinear", align_corners=False)[0]
    assert (reference == 0.5).all()
    assert torch.equal(upsample_argmax(logits, (4, 3), method=method), torch.zeros(4, 3, dtype=torch.int64))


def test_auto_takes_the_dense_path_only_for_logits_without_spatial_structure(monkeypatch):
    """As the docstring says: regions of one class cost little on the sparse path (few cells hold a boundary);
    noise with 150 classes (every cell mixed, many candidates) costs more than interpolating every class."""
    import pixelclip.modeling.postprocess as postprocess

    calls = []
    dense = postprocess._dense_argmax
    monkeypatch.setattr(postprocess, "_dense_argmax", lambda x, *a: calls.append(x.shape[0]) or dense(x, *a))
    regions = torch.zeros(150, 16, 16)
    regions[3, :8], regions[70, 8:] = 1.0, 1.0  # two halves
    noise = torch.randn(150, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = upsample_argmax(torch.stack([regions, noise]), (64, 64))
    assert calls == [1]  # one image, the noise, on the dense path
    reference = F.interpolate(torch.stack([regions, noise]), size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.equal(labels, reference.argmax(1))
