#!/usr/bin/env python
"""The synthetic-world demo: PixelCLIP's central claim, end to end, on a few CPU cores.

    python tools/run_synthetic_demo.py --output output/demo            # what `make demo` runs
    python tools/run_synthetic_demo.py --output output/demo --ablations

Stages (each is skipped when its result is already there, so a second run only re-draws):
 1. the world: unlabeled training images + SAM-like masks (+ the random-mask control), and a
    labelled validation set with its region maps and SAM-like masks (pixelclip/data/datasets/synthetic.py);
 2. the tiny CLIP: loaded from ``--clip-weights`` or pre-trained on image/caption pairs only
    (tools/pretrain_synthetic_clip.py);
 3. CLIP baseline: ``tools/train_net.py --eval-only`` with configs/synthetic/clip_baseline.yaml, and
    the headroom diagnostic of the pre-trained CLIP before any fine-tuning
    (pixelclip/synthetic/headroom.py: dense mIoU, features pooled in the true regions, in the SAM-like masks);
 4. fine-tuning, one run per method and seed (configs/synthetic/<method>.yaml through
    ``tools/train_net.py``: registered datasets, mapper, meta-architecture, SemSegEvaluator), run
    ``--jobs`` at a time; each run logs the cluster statistics (pixelclip/modeling/cluster_stats.py);
 5. the report: ``results.json``, ``results.md`` (written from results.json by
    pixelclip.synthetic.report.format_results_md, also printed), ``overlays.png`` (image | ground
    truth | CLIP | PixelCLIP | random masks on the same validation images) and ``training_curves.png``
    (loss beside the image-blind loss, clusters used, largest cluster, prompt cosine, text alignment).
"""
import argparse
import json
import logging
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

logger = logging.getLogger("synthetic_demo")

CONFIG_DIR = os.path.join(REPO, "configs", "synthetic")
SHIPPED_WEIGHTS = os.path.join(REPO, "pixelclip", "synthetic", "weights", "synthetic_clip_vit_seed0.pt")


@dataclass(frozen=True)
class Variant:
    """One row of the table: a config of configs/synthetic/ (+ overrides), fine-tuned per seed or
    evaluated once from the pre-trained CLIP (``eval_only``: training-free variants)."""

    name: str
    label: str
    config: str
    opts: Tuple[str, ...] = ()
    eval_only: bool = False


MAIN = (
    Variant("pixelclip", "PixelCLIP (SAM-like masks)", "pixelclip.yaml"),
    Variant("random_masks", "PixelCLIP, random masks (control)", "random_masks.yaml"),
)
# --ablations: fine-tuned with --ablation-seeds ...
ABLATIONS = (
    Variant("no_ema", "PixelCLIP, no EMA teacher", "no_ema.yaml"),
    Variant("frozen_prompts", "PixelCLIP, frozen prompts", "frozen_prompts.yaml"),
    Variant("k16", "PixelCLIP, K = 16", "k16.yaml"),
    Variant("k32", "PixelCLIP, K = 32", "k32.yaml"),
    Variant("k64", "PixelCLIP, K = 64", "k64.yaml"),
)
# ... and evaluated once, without fine-tuning: the training-free dense variants of the pre-trained CLIP's
# last block (MODEL.PIXELCLIP.DENSE_MODE, pixelclip/clip/dense_modes.py), run exactly as the CLIP row
# (train_net --eval-only), whose dense path is the default `value` (MaskCLIP-style value path + CLS residual)
EVAL_ONLY_ABLATIONS: Tuple[Variant, ...] = tuple(
    Variant(f"dense_{mode}", f"CLIP, {label} last block (training-free)", "clip_baseline.yaml",
            ("MODEL.PIXELCLIP.DENSE_MODE", mode), eval_only=True)
    for mode, label in (("vanilla", "unmodified"), ("maskclip", "MaskCLIP"), ("sclip", "SCLIP"),
                        ("clearclip", "ClearCLIP"), ("naclip", "NACLIP")))
VARIANTS = {v.name: v for v in MAIN + ABLATIONS + EVAL_ONLY_ABLATIONS}
CLIP_LABEL = "CLIP (image-level captions only)"
# --quick: a few iterations of every stage (the CI test); the same code paths as the full demo.
QUICK_PRETRAIN = dict(steps=3, batch_size=16, pool_size=48, eval_size=16)
QUICK_TRAIN_OPTS = ["SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "TEST.IMS_PER_BATCH", "4"]
QUICK_WORLD = (16, 6)
QUICK_HEADROOM_IMAGES = 6


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/demo", help="output folder (%(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="fine-tuning seeds (%(default)s)")
    trainable = [v.name for v in MAIN + ABLATIONS]
    p.add_argument("--methods", nargs="+", default=[v.name for v in MAIN], choices=trainable,
                   help="fine-tuning methods (configs/synthetic/<method>.yaml)")
    p.add_argument("--ablations", action="store_true",
                   help="also run " + ", ".join(v.name for v in ABLATIONS + EVAL_ONLY_ABLATIONS) + " (with --ablation-seeds)")
    p.add_argument("--ablation-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--clip-weights", default="",
                   help="tiny CLIP checkpoint; pre-trained there if missing (default: the shipped "
                        "pixelclip/synthetic/weights file, else <output>/tiny_clip/synthetic_clip_vit_seed0.pt)")
    p.add_argument("--retrain-clip", action="store_true",
                   help="pre-train the tiny CLIP into <output>/tiny_clip/ even if shipped weights exist")
    p.add_argument("--pretrain-steps", type=int, default=None, help="pre-training steps (default: the script's)")
    p.add_argument("--world-root", default="", help="where the world's files live (default "
                   "$PIXELCLIP_SYNTHETIC_ROOT or $DETECTRON2_DATASETS/synthetic_parts)")
    p.add_argument("--headroom-images", type=int, default=0, help="validation images of the headroom diagnostic (0: all)")
    p.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at a time (%(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (default: cores / jobs)")
    p.add_argument("--num-overlays", type=int, default=6, help="validation images in overlays.png")
    p.add_argument("--quick", action="store_true", help="a few iterations of each stage (CI); not a result")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run (KEY VALUE ...)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s demo] %(message)s", datefmt="%H:%M:%S")
    t_start = time.time()
    out = os.path.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    timings: Dict[str, float] = {}

    # the world's location and size are passed to the train_net subprocesses through the environment
    env = dict(os.environ)
    if args.world_root:
        env["PIXELCLIP_SYNTHETIC_ROOT"] = os.path.abspath(args.world_root)
    if args.quick:
        env["PIXELCLIP_SYNTHETIC_SIZE"] = "%d,%d" % QUICK_WORLD
    os.environ.update({k: env[k] for k in ("PIXELCLIP_SYNTHETIC_ROOT", "PIXELCLIP_SYNTHETIC_SIZE") if k in env})
    cores = os.cpu_count() or 1
    jobs = max(1, args.jobs)
    threads = args.threads or max(1, cores // jobs)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    import torch

    from pixelclip.data.datasets.synthetic import default_world
    from pixelclip.synthetic.pretrain import PretrainConfig, pretrain_synthetic_clip
    from pixelclip.synthetic.headroom import cached_world_headroom
    from pixelclip.synthetic.jobs import Job, children_cpu_seconds, read_json, run_jobs
    from pixelclip.synthetic.overlays import draw_overlays
    from pixelclip.synthetic.report import build_results, draw_curves, format_results_md, training_summary
    from pixelclip.synthetic.storage import ensure_world
    from pixelclip.utils.io import atomic_write

    torch.set_num_threads(cores)

    # 1. the world
    t = time.time()
    root, spec = default_world()
    logger.info("stage 1/5: the synthetic world (%d train, %d val images) under %s", spec.num_train, spec.num_val, root)
    ensure_world(root, spec)
    timings["world"] = round(time.time() - t, 1)

    # 2. the tiny CLIP
    t = time.time()
    if args.clip_weights:
        weights = os.path.abspath(args.clip_weights)
    elif args.retrain_clip or args.quick or not os.path.isfile(SHIPPED_WEIGHTS):
        weights = os.path.join(out, "tiny_clip", "synthetic_clip_vit_seed0.pt")
    else:
        weights = SHIPPED_WEIGHTS
    pretrain_summary = None
    if os.path.isfile(weights):
        logger.info("stage 2/5: tiny CLIP weights found: %s", weights)
    else:
        overrides = dict(QUICK_PRETRAIN) if args.quick else {}
        if args.pretrain_steps is not None:
            overrides["steps"] = args.pretrain_steps
        pcfg = PretrainConfig(num_threads=cores, **overrides)
        logger.info("stage 2/5: pre-training the tiny CLIP on image/caption pairs (%d steps) -> %s", pcfg.steps, weights)
        pretrain_summary = pretrain_synthetic_clip(pcfg, weights)
    timings["clip_pretrain"] = round(time.time() - t, 1)

    dataset = "synthetic_val_sem_seg"
    common = ["MODEL.PIXELCLIP.CLIP_PRETRAINED", weights] + (QUICK_TRAIN_OPTS if args.quick else []) + list(args.opts)

    # 3. CLIP baseline and the headroom diagnostic, before any fine-tuning
    t = time.time()
    logger.info("stage 3/5: the pre-trained tiny CLIP (no fine-tuning): evaluation and headroom")
    clip_config = os.path.join(CONFIG_DIR, "clip_baseline.yaml")
    clip_job = Job("clip", clip_config, os.path.join(out, "clip"), common, eval_only=True, dataset=dataset)
    eval_only_jobs = []
    if args.ablations:
        eval_only_jobs = [Job(v.name, os.path.join(CONFIG_DIR, v.config), os.path.join(out, v.name),
                              common + list(v.opts), eval_only=True, dataset=dataset) for v in EVAL_ONLY_ABLATIONS]
    run_jobs([clip_job] + eval_only_jobs, 1, dict(env, OMP_NUM_THREADS=str(cores), MKL_NUM_THREADS=str(cores)))
    clip_miou = read_json(clip_job.marker)["mIoU"]
    headroom = cached_world_headroom(os.path.join(out, "headroom.json"), clip_config, common, root, dataset,
                                QUICK_HEADROOM_IMAGES if args.quick else args.headroom_images)
    logger.info("  headroom: dense %.2f, pooled in true regions %.2f (%+.2f), in SAM-like masks %.2f (%+.2f) mIoU",
                headroom["dense"], headroom["region_pooled"], headroom["region_pooled_gain"],
                headroom["mask_pooled"], headroom["mask_pooled_gain"])
    timings["clip_eval_and_headroom"] = round(time.time() - t, 1)

    # 4. fine-tuning runs
    t = time.time()
    plan = [(m, s) for m in args.methods for s in args.seeds]
    if args.ablations:
        plan += [(v.name, s) for v in ABLATIONS if v.name not in args.methods for s in args.ablation_seeds]
    jobs_list = [Job(f"{m}_seed{s}", os.path.join(CONFIG_DIR, VARIANTS[m].config), os.path.join(out, f"{m}_seed{s}"),
                     common + list(VARIANTS[m].opts) + ["SEED", str(s)], eval_only=False, dataset=dataset)
                 for m, s in plan]
    logger.info("stage 4/5: %d fine-tuning runs, %d at a time, %d thread(s) each", len(jobs_list), jobs, threads)
    run_jobs(jobs_list, jobs, env)
    timings["finetune"] = round(time.time() - t, 1)

    # 5. report
    t = time.time()
    runs: Dict[str, Dict[int, float]] = {}
    training: Dict[str, Dict[int, dict]] = {}
    for job, (m, s) in zip(jobs_list, plan):
        runs.setdefault(m, {})[s] = read_json(job.marker)["mIoU"]
        training.setdefault(m, {})[s] = training_summary(job.run_dir)
    labels = {"clip": CLIP_LABEL, **{v.name: v.label for v in VARIANTS.values()}}
    meta = {
        "command": "python tools/run_synthetic_demo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": _machine(),
        "weights": os.path.relpath(weights, REPO) if weights.startswith(REPO) else weights,
        "pretrain": pretrain_summary or (_pretrain_meta(weights)),
        "world": {"root": root, **spec.to_dict()},
        "opts": common[2:],
        "quick": bool(args.quick),
        "threads_per_run": threads, "parallel_runs": jobs,
    }
    results = build_results(headroom, clip_miou, runs, labels, training,
                            {j.name: read_json(j.marker)["mIoU"] for j in eval_only_jobs}, meta)
    logger.info("stage 5/5: overlays and curves")
    seed0 = args.seeds[0]
    panels = [("CLIP", clip_config, common, "")]
    for m in args.methods:
        title = "PixelCLIP" if m == "pixelclip" else VARIANTS[m].label.replace("PixelCLIP, ", "")
        panels.append((title, os.path.join(CONFIG_DIR, VARIANTS[m].config), common + list(VARIANTS[m].opts),
                       os.path.join(out, f"{m}_seed{seed0}", "model_final.pth")))
    draw_overlays(os.path.join(out, "overlays.png"), dataset, panels, args.num_overlays)
    draw_curves(os.path.join(out, "training_curves.png"), {j.name: j.run_dir for j in jobs_list}, labels)
    timings["report"] = round(time.time() - t, 1)
    timings["total"] = round(time.time() - t_start, 1)
    results["meta"]["seconds_this_invocation"] = timings
    results["meta"]["seconds_per_run"] = {j.name: (read_json(j.marker) or {}).get("seconds")
                                          for j in [clip_job] + eval_only_jobs + jobs_list}
    # CPU seconds of everything this invocation ran (its own process and the train_net runs): on a shared
    # machine the wall time depends on the load, the CPU time much less
    own = resource.getrusage(resource.RUSAGE_SELF)
    results["meta"]["cpu_seconds_this_invocation"] = round(own.ru_utime + own.ru_stime + children_cpu_seconds(), 1)
    atomic_write(os.path.join(out, "results.json"), json.dumps(results, indent=1) + "\n")
    text = format_results_md(results)
    if args.quick:
        text += "\n(--quick: a few iterations of each stage; these numbers are not a result)\n"
    atomic_write(os.path.join(out, "results.md"),
                  "# Synthetic-world demo: mIoU on synthetic_val_sem_seg\n\n" + text
                  + f"\nCommand: `{meta['command']}`; machine: {meta['machine']}; seconds per stage of this "
                  f"invocation: {json.dumps(timings)}\n")
    print("\n" + text)
    print(f"wrote {out}/results.json, results.md, overlays.png, training_curves.png "
          f"({timings['total']:.0f}s)")
    return 0


def _machine() -> str:
    """CPU model, core count and load average, for the report."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "load average %.2f, %.2f, %.2f at the end" % os.getloadavg()
    except OSError:
        load = ""
    return f"{model}, {os.cpu_count()} cores, torch {__import__('torch').__version__}; {load}"


def _pretrain_meta(weights: str) -> Optional[dict]:
    """The pre-training summary stored in the checkpoint (None for a checkpoint without one)."""
    import torch

    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (not ours / unreadable: the model build reports it)
        return None
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    return (meta or {}).get("summary")


if __name__ == "__main__":
    sys.exit(main())
