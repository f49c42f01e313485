"""Two gloo processes (world size 2, CPU) train to the same weights as one process on the same global batch:
gradients are averaged by DDP, the Sinkhorn sums are all-reduced, the EMA teacher follows the same student."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from pixelclip.solver import build_optimizer
from pixelclip.trainer import create_ddp_model_any_device
from tests.conftest import make_tiny_cfg

STEPS = 3


def _global_batch():
    """4 different 64×64 images; each is fully covered by its masks (4 quadrants), so every process has the same
    number of valid pixels and the mean of the per-process losses is the global-batch loss."""
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(4):
        image = torch.zeros(3, 64, 64)
        masks = torch.zeros(4, 64, 64, dtype=torch.bool)
        for q, (y, x) in enumerate([(0, 0), (0, 32), (32, 0), (32, 32)]):
            image[:, y:y + 32, x:x + 32] = torch.rand(3, 1, 1, generator=g) * 255
            masks[q, y:y + 32, x:x + 32] = True
        weak = (image + torch.randn(3, 64, 64, generator=g) * 20).clamp(0, 255).to(torch.uint8)
        strong = (image * 0.8 + 20 + torch.randn(3, 64, 64, generator=g) * 20).clamp(0, 255).to(torch.uint8)
        inst = Instances((64, 64))
        inst.gt_masks = BitMasks(masks)
        batch.append({"image": weak, "image_strong": strong, "instances": inst})
    return batch


def _train(batch, ddp: bool):
    cfg = make_tiny_cfg()
    cfg.SOLVER.BASE_LR = 1e-2  # large steps (prompts ×10: 0.1, CLIP ×0.01: 1e-4): differences would show
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    net = create_ddp_model_any_device(model, broadcast_buffers=False) if ddp else model
    for _ in range(STEPS):
        loss = net(batch)["loss_masks"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _gloo_rank(rank, world, port, work, batch, folder):
    """One rank: joins the gloo group, runs ``work`` on its equal share of ``batch``, saves what it returns."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        share = len(batch) // world
        torch.save(work(batch[rank * share:(rank + 1) * share]), os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def spawn_gloo_ranks(work, batch, folder, world: int = 2, weights_only: bool = True):
    """``work(share of batch)`` in ``world`` gloo processes on a free local port (a module-level function, so
    that it pickles); returns what each rank's call returned, in rank order."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gloo_rank, args=(world, port, work, batch, str(folder)), nprocs=world, join=True)
    return [torch.load(os.path.join(folder, f"rank{r}.pt"), weights_only=weights_only) for r in range(world)]


def _train_ddp(share):
    return _train(share, ddp=True)


def test_two_gloo_processes_give_the_weights_of_one_process_on_the_global_batch(tmp_path):
    batch = _global_batch()
    ranks = spawn_gloo_ranks(_train_ddp, batch, tmp_path)
    single = _train(batch, ddp=False)
    torch.manual_seed(0)
    start = build_model(make_tiny_cfg()).state_dict()
    moved = [k for k in single if not torch.equal(single[k], start[k])]
    assert any(k.startswith("teacher.") for k in moved) and "prompts.prompt_tokens" in moved
    # Adam moves a weight by about lr per step whatever its gradient, so where a gradient is near 0 float rounding
    # (a sum over 2 processes vs over 4 images) shows as up to 1e-4 of a step: tolerances are 1e-3 of the lr
    lr = {"prompts.": 0.1, "decoder.": 1e-2, "backbone.": 1e-4, "teacher.": 1e-4}
    for key, value in single.items():
        atol = 1e-7 + 1e-3 * next((v for k, v in lr.items() if key.startswith(k)), 0.0)
        for r, state in enumerate(ranks):
            assert torch.allclose(state[key], value, atol=atol, rtol=0), (r, key)
