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
