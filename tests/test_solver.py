"""Parameter groups, lr multipliers and full-model gradient clipping."""
import torch
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler

from pixelclip.solver import build_optimizer
from tests.conftest import make_tiny_cfg


def test_lr_multipliers_and_trainable_set():
    cfg = make_tiny_cfg()
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    base = cfg.SOLVER.BASE_LR
    assert lrs["prompts.prompt_tokens"] == base * 10
    assert lrs["backbone.clip_model.visual.positional_embedding"] == base * 0.01
    assert all(v == base for k, v in lrs.items() if k.startswith("decoder."))
    assert not any("token_embedding" in k or "teacher" in k for k in lrs)


def test_full_model_gradient_clipping():
    cfg = make_tiny_cfg()
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.01
    model = torch.nn.Module()
    model.decoder = torch.nn.Linear(3, 1)
    optimizer = build_optimizer(cfg, model)
    model.decoder(torch.ones(1, 3) * 100).sum().backward()
    optimizer.step()
    norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert abs(norm.item() - 0.01) < 1e-6


def test_cosine_schedule_ends_at_base_lr_end():
    cfg = make_tiny_cfg()
    cfg.SOLVER.MAX_ITER = 10
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(cfg, torch.nn.Sequential(model))
    scheduler = build_lr_scheduler(cfg, optimizer)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert abs(optimizer.param_groups[0]["lr"] - cfg.SOLVER.BASE_LR_END) < 1e-9


def test_fused_adamw_steps_like_pytorchs_reference_adamw():
    # build_optimizer's AdamW (fused) against PyTorch's single-tensor AdamW on the same groups: equal steps up
    # to float rounding, with the lr multipliers, weight decay and clipping of the recipe.
    cfg = make_tiny_cfg()
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    assert optimizer.defaults["fused"]
    params = [g["params"][0] for g in optimizer.param_groups]
    start = [p.detach().clone() for p in params]
    reference = type(optimizer)([{**g, "params": [p.detach().clone().requires_grad_()]} for g, p in
                                 zip(optimizer.param_groups, params)], lr=cfg.SOLVER.BASE_LR, foreach=False, fused=False)
    ref_params = [g["params"][0] for g in reference.param_groups]
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        for p, q in zip(params, ref_params):
            p.grad = torch.randn(p.shape, generator=g) * torch.rand(1, generator=g)
            q.grad = p.grad.clone()
        optimizer.step()
        reference.step()
    for p, q, p0 in zip(params, ref_params, start):
        assert torch.allclose(p - p0, q - p0, rtol=1e-4, atol=1e-9)
        assert (q - p0).abs().max() > 1e-7  # every tensor moved


def test_no_fused_adamw_with_amp():
    cfg = make_tiny_cfg()
    cfg.SOLVER.AMP.ENABLED = True
    assert not build_optimizer(cfg, build_model(cfg)).defaults["fused"]


def test_weight_decay_of_each_parameter_is_detectron2s_norm_rule_under_full_fine_tuning():
    """With CLIP_FINETUNE full (the ConvNeXt recipe's policy) CLIP's LayerNorms train too: every norm layer's weights get
    WEIGHT_DECAY_NORM (0.0), the rest WEIGHT_DECAY, as Detectron2's get_default_optimizer_params decides."""
    from detectron2.solver.build import get_default_optimizer_params

    cfg = make_tiny_cfg(**{"MODEL.PIXELCLIP.CLIP_FINETUNE": "full"})
    model = build_model(cfg)
    s = cfg.SOLVER
    reference = {id(p): g["weight_decay"] for g in get_default_optimizer_params(  # groups merged by value
        model, base_lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY, weight_decay_norm=s.WEIGHT_DECAY_NORM) for p in g["params"]}
    groups = build_optimizer(cfg, model).param_groups
    assert {id(g["params"][0]) for g in groups} == set(reference)
    assert all(g["weight_decay"] == reference[id(g["params"][0])] for g in groups)
    # not vacuous: CLIP's LayerNorms (ln_1, ln_2, ln_pre, ln_post) train here and take no decay
    norm = [g["name"] for g in groups if g["name"].startswith("backbone.clip_model.") and g["weight_decay"] == 0.0]
    assert "backbone.clip_model.visual.ln_post.weight" in norm and len(norm) < len(groups) and s.WEIGHT_DECAY == 1e-4
