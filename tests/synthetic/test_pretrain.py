"""Contrastive pre-training of the tiny CLIP: a loadable open_clip checkpoint, resumable."""
import os

import torch

from pixelclip.clip.build import build_clip_model
from pixelclip.synthetic.pretrain import PretrainConfig, _batch, build_pool, pretrain_synthetic_clip
from pixelclip.synthetic.world import WorldConfig


def _tiny(**kw):
    return PretrainConfig(model_name="PixelCLIP-Tiny-ViT", steps=4, batch_size=4, pool_size=8, eval_size=6,
                          warmup_steps=1, state_period=2, world=WorldConfig(image_size=64), **kw)


def test_pretrain_writes_an_open_clip_checkpoint(tmp_path):
    path = str(tmp_path / "clip.pt")
    summary = pretrain_synthetic_clip(_tiny(), path)
    assert os.path.isfile(path) and not os.path.exists(path + ".state")
    assert summary["final_loss"] > 0 and 0 <= summary["recognition"]["mAP"] <= 100
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert all(v.dtype != torch.float32 for v in ckpt["state_dict"].values())  # fp16 storage
    model, _ = build_clip_model("PixelCLIP-Tiny-ViT", path)  # the path configs use (CLIP_PRETRAINED)
    ref = ckpt["state_dict"]["visual.conv1.weight"].float()
    assert torch.equal(model.visual.conv1.weight.detach(), ref)


def test_batches_depend_on_seed_and_step_only():
    cfg = _tiny()
    pool = build_pool(cfg.pool_size, 123, cfg.world)
    a_img, a_cap = _batch(pool, cfg, 3)
    b_img, b_cap = _batch(pool, cfg, 3)
    c_img, _ = _batch(pool, cfg, 4)
    assert torch.equal(a_img, b_img) and a_cap == b_cap and not torch.equal(a_img, c_img)


def test_resume_from_state_gives_the_same_weights(tmp_path):
    full = str(tmp_path / "full.pt")
    pretrain_synthetic_clip(_tiny(), full)
    # run to step 2 (a state file is written there), "crash", and resume
    cut = _tiny()
    import pixelclip.synthetic.pretrain as pretrain

    calls = {"n": 0}
    original = pretrain._batch

    def crash_after_two(pool, c, step):
        if step == 2 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt
        return original(pool, c, step)

    pretrain._batch = crash_after_two
    resumed = str(tmp_path / "resumed.pt")
    try:
        try:
            pretrain_synthetic_clip(cut, resumed)
        except KeyboardInterrupt:
            pass
        assert os.path.isfile(resumed + ".state") and not os.path.isfile(resumed)
        pretrain_synthetic_clip(cut, resumed)
    finally:
        pretrain._batch = original
    a = torch.load(full, weights_only=True)["state_dict"]
    b = torch.load(resumed, weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=2e-3) for k in a)
