"""The PixelCLIP meta-architecture: learning on a fixed tiny batch, what trains, and inference."""
import copy

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from pixelclip.modeling.clustering import sinkhorn
from pixelclip.modeling.pixelclip import _resized_cosine
from pixelclip.solver import build_optimizer
from tests.conftest import make_tiny_cfg


def _batch(n=2, size=64, seed=0):
    """Images made of 4 coloured quadrants (with noise), each quadrant one unlabeled mask."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        image = torch.zeros(3, size, size)
        masks = torch.zeros(4, size, size, dtype=torch.bool)
        h = size // 2
        for q, (y, x) in enumerate([(0, 0), (0, h), (h, 0), (h, h)]):
            image[:, y:y + h, x:x + h] = torch.rand(3, 1, 1, generator=g) * 255
            masks[q, y:y + h, x:x + h] = True
        image = (image + torch.randn(3, size, size, generator=g) * 10).clamp(0, 255).to(torch.uint8)
        inst = Instances((size, size))
        inst.gt_masks = BitMasks(masks)
        out.append({"image": image, "image_strong": image, "instances": inst})
    return out


def test_thirty_steps_lower_the_loss_and_move_the_right_weights():
    torch.manual_seed(0)
    cfg = make_tiny_cfg()
    cfg.SOLVER.BASE_LR = 2e-3
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    batch = _batch()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    teacher_start = {n: p.detach().clone() for n, p in model.teacher.named_parameters()}
    losses = []
    for _ in range(30):
        loss = model(batch)["loss_masks"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    assert "prompts.prompt_tokens" in moved
    assert any(n.startswith("decoder.") for n in moved)
    assert "backbone.clip_model.visual.positional_embedding" in moved
    assert any("visual.transformer.resblocks.1.attn.in_proj_weight" in n for n in moved)
    # frozen: text encoder, and image-encoder weights outside the 'attention' policy
    assert not any(n.startswith("backbone.clip_model.") and not n.startswith("backbone.clip_model.visual.") for n in moved)
    assert not any("mlp" in n and "visual" in n for n in moved)
    assert not any("token_embedding" in n or "ln_final" in n for n in moved)
    # the teacher moved towards the student, only where the student trains
    teacher_moved = {n for n, p in model.teacher.named_parameters() if not torch.equal(p, teacher_start[n])}
    assert "encoder.positional_embedding" in teacher_moved
    assert not any("mlp" in n for n in teacher_moved)


def _reference_loss(model, batch):
    """The training loss computed the straightforward way, as the release does: the prompts through the
    full 77-token context, masks resized by F.interpolate, the teacher features upsampled to R×R and
    averaged inside each mask, targets as unions of masks, the decoder layer by layer in its default
    (NCHW) layout, then bilinear to R×R and BCE over the valid pixels."""
    r, k = model.mask_resolution, model.prompts.num_prompts
    weak = model.preprocess.batch([x["image"] for x in batch])
    strong = model.preprocess.batch([x["image_strong"] for x in batch])
    masks = []
    for x in batch:
        m = F.interpolate(x["instances"].gt_masks.tensor[None].float(), size=(r, r), mode="nearest")[0] > 0.5
        masks.append(m[m.flatten(1).sum(1) > 1])
    teacher = model.teacher_features(weak)
    student = model.backbone(strong)["clip_dense"]
    model.text_encoder.truncate_context = False
    prompts = model.prompts()
    with torch.no_grad():
        up = F.interpolate(teacher, size=(r, r), mode="bilinear", align_corners=False)
        pooled = torch.cat([(m.flatten(1).to(up.dtype) @ up[i].flatten(1).t()) / m.flatten(1).sum(1, keepdim=True)
                            for i, m in enumerate(masks)])
        logits = model.eps * F.normalize(pooled, dim=-1) @ F.normalize(prompts, dim=-1).t()
        assignment = sinkhorn(logits, model.sinkhorn_iters).argmax(1)
        targets = torch.zeros(len(batch), k, r, r, dtype=student.dtype)
        for i, chunk in enumerate(assignment.split([len(m) for m in masks])):
            for mask, cluster in zip(masks[i], chunk.tolist()):
                targets[i, cluster] = torch.maximum(targets[i, cluster], mask.to(student.dtype))
        valid = torch.stack([m.any(0) for m in masks])
    cost = torch.einsum("bchw,kc->bkhw", F.normalize(student, dim=1), F.normalize(prompts, dim=-1))
    x = cost.reshape(-1, 1, *cost.shape[-2:])
    for layer in model.decoder.layers:
        x = layer(x)
    pred = F.interpolate(x.reshape(len(batch), k, *x.shape[-2:]), size=(r, r), mode="bilinear", align_corners=False)
    bce = F.binary_cross_entropy_with_logits(pred, targets, reduction="none")
    return (bce * valid[:, None]).sum() / (valid.sum() * k)


def test_training_step_equals_a_straightforward_reference_in_float64():
    # The fast step (prompts on the context up to EOT, pooling on the source grid, channels-last decoder,
    # masks picked by rows and columns) against _reference_loss: the same loss, gradients and EMA teacher.
    cfg = make_tiny_cfg()
    torch.manual_seed(0)
    model = build_model(cfg).double().train()
    batch = _batch()
    g = torch.Generator().manual_seed(1)
    for x in batch:  # overlapping masks of all sizes, one that vanishes at MASK_RESOLUTION
        extra = torch.zeros(5, 64, 64, dtype=torch.bool)
        for j, (y0, x0, side) in enumerate(torch.randint(0, 40, (4, 3), generator=g).tolist()):
            extra[j, y0:y0 + side // 2 + 3, x0:x0 + side + 2] = True
        extra[4, 5, 7] = True
        inst = Instances((64, 64))
        inst.gt_masks = BitMasks(torch.cat([x["instances"].gt_masks.tensor, extra]))
        x["instances"] = inst
        x["image_strong"] = (x["image"].float() * 0.9 + 10).round().to(torch.uint8)
    reference = copy.deepcopy(model)
    loss = model(batch)["loss_masks"]
    loss.backward()
    expected = _reference_loss(reference, batch)
    expected.backward()
    assert loss.dtype == torch.float64
    assert torch.allclose(loss, expected, rtol=1e-12, atol=0)
    ref_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert torch.allclose(param.grad, ref_params[name].grad, rtol=1e-10, atol=1e-16), name
        else:
            assert torch.equal(param, ref_params[name]), name  # e.g. the teacher after its EMA step


def test_no_momentum_and_frozen_prompts_ablations_run():
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.USE_MOMENTUM = False
    cfg.MODEL.PIXELCLIP.LEARN_PROMPTS = False
    model = build_model(cfg).train()
    assert model.teacher is None and not model.prompts.prompt_tokens.requires_grad
    loss = model(_batch())["loss_masks"]
    loss.backward()
    assert torch.isfinite(loss)


def test_batch_without_masks_gives_zero_loss():
    model = build_model(make_tiny_cfg()).train()
    batch = _batch()
    for x in batch:
        x["instances"] = Instances((64, 64))
    loss = model(batch)["loss_masks"]
    loss.backward()
    assert loss.item() == 0.0


@pytest.mark.parametrize("mode,flip", [("whole", False), ("whole", True), ("slide", False)])
def test_inference_batch_of_any_size(mode, flip):
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.TEST.MODE = mode
    cfg.MODEL.PIXELCLIP.TEST.FLIP = flip
    model = build_model(cfg).eval()
    model.set_vocabulary(["sky", "grass, lawn", "dog"])
    inputs = [
        {"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8), "height": 80, "width": 120},
        {"image": torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8), "height": 64, "width": 64},
        {"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8), "height": 80, "width": 120},
    ]
    outputs = model(inputs)
    assert [tuple(o["sem_seg"].shape) for o in outputs] == [(3, 80, 120), (3, 64, 64), (3, 80, 120)]
    single = model(inputs[1:2])[0]["sem_seg"]
    assert torch.allclose(single, outputs[1]["sem_seg"], atol=1e-5)


@pytest.mark.parametrize("size", [(64, 64), (37, 50), (8, 8), (3, 5)])
def test_resized_cosine_equals_cosine_of_resized_features(size):
    # The release's order: resize the C feature maps, normalise each pixel, dot with the unit text
    # embeddings (float64 here). Features far from each other (random, some near-opposite neighbours).
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 32, 6, 7, generator=g) + 0.5 * torch.randn(2, 32, 1, 1, generator=g)
    text = F.normalize(torch.randn(5, 32, generator=g), dim=-1)
    resized = F.interpolate(features.double(), size=size, mode="bilinear", align_corners=False)
    expected = torch.einsum("bchw,kc->bkhw", F.normalize(resized, dim=1), text.double())
    assert torch.allclose(_resized_cosine(features, text, size).double(), expected, atol=1e-6, rtol=0)


def test_inference_logits_are_cosines_of_resized_dense_features():
    model = build_model(make_tiny_cfg()).eval()
    model.set_vocabulary(["sky", "grass", "dog"])
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model([{"image": image, "height": 16, "width": 16}])[0]["sem_seg"]  # the 16×16 feature grid
        features = model.backbone(model.preprocess.batch([image]))["clip_dense"]
        text = model.classifier(model.vocabulary)
    resized = F.interpolate(features.double(), size=(16, 16), mode="bilinear", align_corners=False)
    expected = torch.einsum("bchw,kc->bkhw", F.normalize(resized, dim=1), text.double())[0]
    assert torch.allclose(logits.double(), expected, atol=1e-6, rtol=0)


def test_inference_without_vocabulary_is_a_clear_error():
    model = build_model(make_tiny_cfg()).eval()
    with pytest.raises(RuntimeError, match="no vocabulary"):
        model([{"image": torch.zeros(3, 64, 64, dtype=torch.uint8)}])


def test_online_dino_masks_replace_mask_files():
    cfg = make_tiny_cfg()
    cfg.MODEL.DINO.ENABLED = True
    cfg.MODEL.DINO.MODEL_NAME = "vit_tiny_patch16_224"
    cfg.MODEL.DINO.WEIGHTS = "random"  # tests only: a real run gives a local DINO checkpoint
    cfg.MODEL.DINO.NUM_CLUSTERS = 4
    cfg.MODEL.DINO.INPUT_SIZE = 64
    model = build_model(cfg).train()
    batch = _batch()
    for x in batch:  # no mask files: the mapper gives empty instances when DINO is on
        x["instances"] = Instances((64, 64))
    masks = model._masks_of(batch)
    assert all(1 <= len(m) <= 4 for m in masks)
    assert all(m.any(0).all() for m in masks)  # k-means clusters cover the image
    loss = model(batch)["loss_masks"]
    loss.backward()
    assert loss.item() > 0


def test_dino_without_weights_is_a_clear_error():
    cfg = make_tiny_cfg()
    cfg.MODEL.DINO.ENABLED = True
    with pytest.raises(ValueError, match="MODEL.DINO.WEIGHTS"):
        build_model(cfg)


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_labels_output_is_the_argmax_of_the_logits_output(mode):
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.TEST.MODE = mode
    model = build_model(cfg).eval()
    model.set_vocabulary(["sky", "grass", "dog", "road", "tree"])
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8, generator=g), "height": 75, "width": 113}
              for _ in range(2)]
    logits = model(inputs)
    model.test_output = "labels"
    labels = model(inputs)
    for lg, lb in zip(logits, labels):
        assert set(lb) == {"sem_seg_labels"} and lb["sem_seg_labels"].shape == (75, 113)
        assert torch.equal(lb["sem_seg_labels"], lg["sem_seg"].argmax(0))


def test_unknown_test_output_is_a_clear_error():
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.TEST.OUTPUT = "probabilities"
    with pytest.raises(ValueError, match="MODEL.PIXELCLIP.TEST.OUTPUT is 'probabilities', but it must be logits or labels"):
        build_model(cfg)
