"""`make demo` shortened: every stage for a few iterations, through the real registered datasets,
mapper, meta-architecture, trainer and SemSegEvaluator (tools/train_net.py subprocesses)."""
import json
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _demo_module():
    """tools/run_synthetic_demo.py as a module (its table of variants)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_synthetic_demo", os.path.join(REPO, "tools", "run_synthetic_demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_demo(out, world, extra=()):
    cmd = [sys.executable, os.path.join(REPO, "tools", "run_synthetic_demo.py"), "--quick", "--output", str(out),
           "--world-root", str(world), "--seeds", "0", "1", "--jobs", "2", "--num-overlays", "2", *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr, time.time() - t0


def test_demo_pipeline_end_to_end_and_resume(tmp_path):
    out, world = tmp_path / "demo", tmp_path / "world"
    log, _ = _run_demo(out, world)

    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"headroom", "clip", "pixelclip", "random_masks", "headline", "checks", "meta"}
    # the headroom diagnostic ran before fine-tuning, on the quick world's validation images
    headroom = results["headroom"]
    assert headroom["num_images"] == 6 and all(0.0 <= headroom[k] <= 100.0 for k in ("dense", "region_pooled", "mask_pooled"))
    # its dense row is the evaluator's CLIP row (same features, same arg-max, same mIoU rule)
    assert abs(headroom["dense"] - results["clip"]["mean"]) < 0.01
    assert (out / "headroom.json").is_file()

    def evaluated(run):  # the mIoU the run's SemSegEvaluator wrote (results.json rounds to 2 decimals)
        return round(json.loads((out / run / "summary.json").read_text())["synthetic_val_sem_seg"]["mIoU"], 2)

    for method in ("pixelclip", "random_masks"):
        assert set(results[method]["mIoU"]) == {"seed0", "seed1"}
        for seed, value in results[method]["mIoU"].items():
            assert value == pytest.approx(evaluated(f"{method}_{seed}"), abs=1e-6), (method, seed)
    assert results["clip"]["mean"] == pytest.approx(evaluated("clip"), abs=1e-6)
    assert results["meta"]["quick"] is True
    # the stages really ran through train_net: a checkpoint, D2 metrics and the evaluator's summary
    for run in ("pixelclip_seed0", "pixelclip_seed1", "random_masks_seed0", "random_masks_seed1"):
        assert (out / run / "model_final.pth").is_file()
        metrics = [json.loads(line) for line in (out / run / "metrics.json").read_text().splitlines()]
        logged = set().union(*metrics)  # D2 logs a model's single loss as total_loss only
        assert {"total_loss", "pixelclip/blind_loss", "pixelclip/clusters_used", "pixelclip/largest_cluster_share",
                "pixelclip/prompt_cosine", "pixelclip/text_alignment"} <= logged
        summary = json.loads((out / run / "summary.json").read_text())
        assert "synthetic_val_sem_seg" in summary
        cfg = (out / run / "config.yaml").read_text()
        assert "PixelCLIP" in cfg and "synthetic_train" in cfg
    assert "synthetic_train_random_masks" in (out / "random_masks_seed0" / "config.yaml").read_text()
    assert (out / "clip" / "summary.json").is_file()
    for name in ("overlays.png", "training_curves.png", "results.md"):
        assert (out / name).stat().st_size > 1000 or name == "results.md"
    md = (out / "results.md").read_text()
    assert "| CLIP (image-level captions only) |" in md and "Headroom" in md and "PixelCLIP − random masks" in md
    # results.md is written from results.json alone
    from pixelclip.synthetic.report import format_results_md

    assert format_results_md(results) in md
    training = results["pixelclip"]["training"]["seed0"]
    assert training["iterations"] == 3 and "blind_loss_final" in training and "loss_final" in training
    assert os.path.isfile(results["meta"]["weights"]) or (out / "tiny_clip" / "synthetic_clip_vit_seed0.pt").is_file()

    # a second run finds every stage done and only redraws the report
    log2, _ = _run_demo(out, world)
    assert log2.count("already done") == 6, log2[-2000:]  # clip, headroom, four fine-tuning runs
    assert json.loads((out / "results.json").read_text())["pixelclip"]["mIoU"] == results["pixelclip"]["mIoU"]


def test_ablations_evaluate_every_training_free_dense_mode():
    """``--ablations`` adds one training-free row per DENSE_MODE other than the CLIP row's default ``value``,
    each the CLIP baseline config with only that mode changed."""
    from pixelclip.clip.dense_modes import DENSE_MODES

    demo = _demo_module()
    rows = {v.opts[1]: v for v in demo.EVAL_ONLY_ABLATIONS}
    assert sorted(rows) == sorted(m for m in DENSE_MODES if m != "value")
    for mode, v in rows.items():
        assert v.eval_only and v.config == "clip_baseline.yaml" and v.opts == ("MODEL.PIXELCLIP.DENSE_MODE", mode)
