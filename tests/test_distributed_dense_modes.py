"""Two gloo processes (CPU), CLIP_FINETUNE full with DENSE_MODE clearclip and naclip: DDP (Detectron2's, no
find_unused_parameters) runs two iterations (it failed at the second when the last block's feed-forward half
trained without a gradient), and the cluster diagnostics rank 0 logs are those of the global batch."""

import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from pixelclip.modeling.clustering import cluster_targets
from pixelclip.modeling.cluster_stats import log_cluster_stats
from pixelclip.solver import build_optimizer
from pixelclip.trainer import create_ddp_model_any_device
from tests.conftest import make_tiny_cfg
from tests.test_distributed_training import _global_batch, spawn_gloo_ranks

MODES = ("clearclip", "naclip")
STATS = ("masks_per_image", "blind_loss", "clusters_used", "largest_cluster_share")


def _cfg(mode):
    return make_tiny_cfg(**{"MODEL.PIXELCLIP.CLIP_FINETUNE": "full", "MODEL.PIXELCLIP.DENSE_MODE": mode})


def _stats(model, batch):
    """The cluster diagnostics of ``batch`` as log_cluster_stats writes them (a no-grad pass of the model's parts)."""
    with torch.no_grad():
        masks = model._masks_of(batch)
        teacher = model.teacher.encoder
        from pixelclip.clip.dense import dense_features

        feats = dense_features(teacher, model.preprocess.batch([x["image"] for x in batch]), model.dense_mode)
        prompts = model.prompts()
        targets, valid, assignment = cluster_targets(feats, masks, prompts, model.eps, model.sinkhorn_iters)
    with EventStorage() as storage:
        log_cluster_stats(masks, assignment, targets, valid, prompts)
        return {k: storage.history(f"pixelclip/{k}").latest() for k in STATS}


def _train_modes(mine):
    """Two DDP iterations per dense mode on this rank's share; loss, statistics and weights per mode."""
    out = {}
    for mode in MODES:
        torch.manual_seed(0)
        model = build_model(_cfg(mode)).train()
        optimizer = build_optimizer(_cfg(mode), model)
        net = create_ddp_model_any_device(model, broadcast_buffers=False)
        for _ in range(2):  # the second iteration is where DDP found the unreduced gradients
            loss = net(mine)["loss_masks"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        out[mode] = {"loss": float(loss), "stats": _stats(model, mine),
                     "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    return out


def test_full_finetuning_with_clearclip_and_naclip_runs_under_ddp_and_stats_cover_both_ranks(tmp_path):
    batch = _global_batch()
    ranks = spawn_gloo_ranks(_train_modes, batch, tmp_path, weights_only=False)
    for mode in MODES:
        assert all(torch.isfinite(torch.tensor(r[mode]["loss"])) for r in ranks)
        # every rank logs the numbers of the 4-image global batch, not those of its own 2 images: the reference
        # is one process on the whole batch with the weights the run ended with (DDP keeps the ranks equal)
        model = build_model(_cfg(mode))
        model.load_state_dict(ranks[0][mode]["state"])
        single = _stats(model, batch)
        for r in ranks:
            for key in STATS:
                assert abs(r[mode]["stats"][key] - single[key]) <= 1e-12, (mode, key)
        assert single["masks_per_image"] == 4.0 and single["clusters_used"] >= 1
