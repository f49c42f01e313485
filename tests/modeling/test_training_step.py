"""The training step against hand computations on a tiny model: the loss, which view each encoder sees,
the EMA step and its place in the step, the cost volume."""
import copy

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances
from torch import nn

import pixelclip.modeling.pixelclip as pixelclip_module
from pixelclip.config import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD
from tests.conftest import make_tiny_cfg

R = 32  # MASK_RESOLUTION of the tiny config; images are 64×64


def _masks_at_r():
    """Per image, masks at R×R: A (top-left 16×16), B (bottom half), C (one pixel, dropped by the > 1 filter).
    Pixels covered by a kept mask: A ∪ B, 768 of 1024; the top-right 16×16 block is covered by none."""
    a = torch.zeros(R, R, dtype=torch.bool)
    a[:16, :16] = True
    b = torch.zeros(R, R, dtype=torch.bool)
    b[16:] = True
    c = torch.zeros(R, R, dtype=torch.bool)
    c[0, 31] = True
    return torch.stack([a, b, c])


def _batch(weak_value=None, strong_value=None, seed=0):
    """Two 64×64 images (weak and strong views differ) whose masks, downsampled to R (nearest), are exactly
    ``_masks_at_r``."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(2):
        weak = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g)
        strong = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g)
        if weak_value is not None:
            weak.fill_(weak_value)
        if strong_value is not None:
            strong.fill_(strong_value)
        masks = _masks_at_r().repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
        inst = Instances((64, 64))
        inst.gt_masks = BitMasks(masks)
        out.append({"image": weak, "image_strong": strong, "instances": inst})
    return out


class FixedLogits(nn.Module):
    """Stands in for the decoder: records the cost volume and returns fixed B×K×R×R logits (the model's
    resize to R is then the identity)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.cost = None

    def forward(self, cost):
        self.cost = cost
        return self.logits + 0.0 * cost.sum()


def _model(**overrides):
    torch.manual_seed(0)
    return build_model(make_tiny_cfg(**overrides)).train()


def _record_targets(monkeypatch):
    seen = {}
    real = pixelclip_module.cluster_targets

    def cluster_targets(*args, **kwargs):
        seen["targets"], seen["valid"], seen["assignment"] = out = real(*args, **kwargs)
        return out

    monkeypatch.setattr(pixelclip_module, "cluster_targets", cluster_targets)
    return seen


def test_loss_is_bce_averaged_over_k_at_pixels_covered_by_a_mask(monkeypatch):
    model = _model()
    k = model.prompts.num_prompts
    logits = torch.randn(2, k, R, R, generator=torch.Generator().manual_seed(1)) * 3
    model.decoder = FixedLogits(logits)
    seen = _record_targets(monkeypatch)
    loss = model(_batch())["loss_masks"]
    targets = seen["targets"].double()
    # each target map is a union of whole kept masks, and together they cover A ∪ B
    a, b, _ = _masks_at_r()
    for i in range(2):
        for t in targets[i].bool():
            assert any(torch.equal(t, u) for u in (torch.zeros_like(a), a, b, a | b))
        assert torch.equal(targets[i].amax(0).bool(), a | b)
    # hand computation: -[y log σ(x) + (1 - y) log(1 - σ(x))] = softplus(x) - y x, summed over the K maps at the
    # 2 × 768 covered pixels and divided by 2 × 768 × K
    x = logits.double()
    bce = F.softplus(x) - targets * x
    covered = (a | b).double()
    expected = (bce * covered).sum() / (2 * 768 * k)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # not the mean over every pixel, nor over covered pixels without the K average
    assert abs(bce.mean().item() - expected.item()) > 1e-2


def test_student_sees_the_strong_view_and_the_teacher_the_weak_one():
    model = _model()
    inputs = {}
    model.backbone.register_forward_pre_hook(lambda m, args: inputs.update(student=args[0]))
    model.teacher.register_forward_pre_hook(lambda m, args: inputs.update(teacher=args[0]))
    model(_batch(weak_value=0, strong_value=255))
    mean, std = torch.tensor(CLIP_PIXEL_MEAN), torch.tensor(CLIP_PIXEL_STD)
    for name, value in (("student", 255.0), ("teacher", 0.0)):
        x = inputs[name]
        assert x.shape == (2, 3, 64, 64)
        expected = ((value - mean) / std).view(1, 3, 1, 1).expand_as(x)
        assert torch.allclose(x, expected, atol=1e-6), name


def test_ema_moves_trainable_teacher_tensors_before_the_teacher_forward():
    model = _model(**{"MODEL.PIXELCLIP.MOMENTUM": 0.9})
    student = dict(model.backbone.clip_model.visual.named_parameters())
    teacher = dict(model.teacher.encoder.named_parameters())
    with torch.no_grad():  # teacher ≠ student everywhere, frozen tensors too
        g = torch.Generator().manual_seed(3)
        for name, p in teacher.items():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    before_teacher = copy.deepcopy(model.teacher)
    t0 = {n: p.detach().clone() for n, p in teacher.items()}
    s0 = {n: p.detach().clone() for n, p in student.items()}
    seen = {}
    hook = model.teacher.register_forward_hook(lambda m, args, out: seen.update(images=args[0], features=out))
    model(_batch())
    hook.remove()
    trainable = {n for n, p in student.items() if p.requires_grad}
    assert trainable and len(trainable) < len(student)
    for name, p in teacher.items():
        if name in trainable:  # ξ <- 0.9 ξ + 0.1 θ, once
            assert torch.allclose(p, 0.9 * t0[name] + 0.1 * s0[name], atol=1e-7), name
        else:
            assert torch.equal(p, t0[name]), name
    with torch.no_grad():
        after = model.teacher(seen["images"])
        stale = before_teacher(seen["images"])
    assert torch.allclose(seen["features"], after, atol=1e-6)  # the teacher ran with the updated weights
    assert (seen["features"] - stale).abs().max() > 1e-3


def test_cost_volume_is_the_cosine_of_student_features_and_prompts():
    model = _model()
    k = model.prompts.num_prompts
    model.decoder = FixedLogits(torch.zeros(2, k, R, R))
    seen = {}
    model.backbone.register_forward_hook(lambda m, args, out: seen.update(student=out["clip_dense"]))
    model.prompts.register_forward_hook(lambda m, args, out: seen.update(prompts=out))
    model(_batch())
    f, p = seen["student"].detach().double(), seen["prompts"].detach().double()
    assert (f.norm(dim=1) - 1).abs().max() > 0.1 and (p.norm(dim=1) - 1).abs().max() > 0.1  # not unit already
    expected = torch.einsum("bchw,kc->bkhw", f, p) / (f.norm(dim=1)[:, None] * p.norm(dim=1)[None, :, None, None])
    assert torch.allclose(model.decoder.cost.double(), expected, atol=1e-6)


def _clustering_logits(monkeypatch, real, **overrides):
    """The logits and iteration count that one training step hands to Sinkhorn-Knopp (``real``)."""
    import pixelclip.modeling.clustering as clustering

    seen = {}

    def sinkhorn(logits, num_iters=3):
        seen["logits"], seen["iters"] = logits.clone(), num_iters
        return real(logits, num_iters)

    monkeypatch.setattr(clustering, "sinkhorn", sinkhorn)
    _model(**overrides)(_batch())
    return seen


def test_eps_and_sinkhorn_iters_of_the_config_reach_the_clustering(monkeypatch):
    """MODEL.PIXELCLIP.EPS scales the cosine logits (the same model and batch at ε = 1 and ε = 7: 7 times the
    logits) and MODEL.PIXELCLIP.SINKHORN_ITERS is the number of iterations run."""
    from pixelclip.modeling.clustering import sinkhorn

    unit = _clustering_logits(monkeypatch, sinkhorn, **{"MODEL.PIXELCLIP.EPS": 1.0, "MODEL.PIXELCLIP.SINKHORN_ITERS": 1})
    scaled = _clustering_logits(monkeypatch, sinkhorn, **{"MODEL.PIXELCLIP.EPS": 7.0, "MODEL.PIXELCLIP.SINKHORN_ITERS": 5})
    assert unit["iters"] == 1 and scaled["iters"] == 5
    assert unit["logits"].shape == (4, 8)  # 2 kept masks per image, K = 8
    assert float(unit["logits"].abs().max()) <= 1 + 1e-6  # cosines
    torch.testing.assert_close(scaled["logits"], 7 * unit["logits"], rtol=1e-5, atol=1e-6)


def test_a_step_inside_a_trainer_logs_the_clustering_diagnostics():
    """Inside Detectron2's EventStorage a training step logs pixelclip/* numbers of its batch: 2 kept masks per
    image, and with a vocabulary the text numbers (at most the vocabulary's 2 classes are nearest to a prompt)."""
    from detectron2.utils.events import EventStorage

    model = _model()
    model.set_vocabulary(["dog", "sky"])
    with EventStorage(0) as storage:
        model(_batch())
        values = {k: v[0] for k, v in storage.latest().items()}
    assert values["pixelclip/masks_per_image"] == 2.0
    assert {"pixelclip/blind_loss", "pixelclip/clusters_used", "pixelclip/prompt_cosine"} <= values.keys()
    assert -1.0 <= values["pixelclip/text_alignment"] <= 1.0 and values["pixelclip/classes_nearest"] in (1.0, 2.0)
