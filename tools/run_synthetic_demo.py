#!/usr/bin/env python
"""The synthetic-world demo (issue 6): PixelCLIP's central claim, end to end, on a few CPU cores.

    python tools/run_synthetic_demo.py --output output/demo            # what `make demo` runs
    python tools/run_synthetic_demo.py --output output/demo --ablations

Stages (each is skipped when its result is already there, so a second run only re-draws):
 1. the world: unlabeled training images + SAM-like masks (+ the random-mask control), and a
    labelled validation set (pixelclip/data/datasets/synthetic.py);
 2. the tiny CLIP: loaded from ``--clip-weights`` or pre-trained on image/caption pairs only
    (tools/pretrain_synthetic_clip.py);
 3. CLIP baseline: ``tools/train_net.py --eval-only`` with configs/synthetic/clip_baseline.yaml;
 4. fine-tuning, one run per method and seed (configs/synthetic/<method>.yaml through
    ``tools/train_net.py``: registered datasets, mapper, meta-architecture, SemSegEvaluator), run
    ``--jobs`` at a time;
 5. the report: ``results.json``, ``results.md`` (the table, also printed), ``overlays.png``
    (image | ground truth | CLIP | PixelCLIP on the same validation images) and
    ``training_curves.png`` (loss vs iteration from D2's metrics.json).
"""
import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

logger = logging.getLogger("synthetic_demo")

CONFIG_DIR = os.path.join(REPO, "configs", "synthetic")
SHIPPED_WEIGHTS = os.path.join(REPO, "pixelclip", "synthetic", "weights", "synthetic_clip_vit_seed0.pt")
MAIN_METHODS = ("pixelclip", "random_masks")
ABLATIONS = ("no_ema", "frozen_prompts", "k8", "k16", "k64")
METHOD_LABELS = {
    "clip": "CLIP (image-level captions only)",
    "pixelclip": "PixelCLIP (SAM-like masks)",
    "random_masks": "PixelCLIP, random masks (control)",
    "no_ema": "PixelCLIP, no EMA teacher",
    "frozen_prompts": "PixelCLIP, frozen prompts",
    "k8": "PixelCLIP, K = 8",
    "k16": "PixelCLIP, K = 16",
    "k64": "PixelCLIP, K = 64",
}
# --quick: a few iterations of every stage (the CI test); the same code paths as the full demo.
QUICK_PRETRAIN = dict(steps=3, batch_size=16, pool_size=48, eval_size=16)
QUICK_TRAIN_OPTS = ["SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "TEST.IMS_PER_BATCH", "4"]
QUICK_WORLD = (16, 6)


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _summary_miou(run_dir: str, dataset: str) -> Optional[float]:
    """mIoU of ``dataset`` from the summary.json that the trainer's evaluation writes."""
    summary = _read_json(os.path.join(run_dir, "summary.json")) or {}
    value = (summary.get(dataset) or {}).get("mIoU")
    return None if value is None else float(value)


def _config_hash(config: str, opts: List[str]) -> str:
    import hashlib

    from pixelclip import get_pixelclip_cfg

    cfg = get_pixelclip_cfg(config, opts)
    return hashlib.sha1(cfg.dump().encode()).hexdigest()


class Job:
    """One ``tools/train_net.py`` run (fine-tuning + final evaluation, or evaluation only)."""

    def __init__(self, name: str, config: str, run_dir: str, opts: List[str], eval_only: bool, dataset: str):
        self.name, self.config, self.run_dir, self.opts = name, config, run_dir, list(opts)
        self.eval_only, self.dataset = eval_only, dataset
        self.proc: Optional[subprocess.Popen] = None
        self.started = 0.0
        self.seconds = 0.0

    @property
    def marker(self) -> str:
        return os.path.join(self.run_dir, "demo_stage.json")

    def signature(self) -> dict:
        """What the result depends on: the merged config (files + overrides), so an edited YAML re-runs."""
        return {"config": os.path.relpath(self.config, REPO), "opts": self.opts, "eval_only": self.eval_only,
                "merged_config_sha1": _config_hash(self.config, self.opts + ["OUTPUT_DIR", self.run_dir])}

    def done(self) -> bool:
        marker = _read_json(self.marker)
        return bool(marker) and marker.get("signature") == self.signature() and marker.get("mIoU") is not None

    def command(self) -> List[str]:
        cmd = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", self.config]
        if self.eval_only:
            cmd.append("--eval-only")
        else:
            cmd.append("--resume")  # continue from the last checkpoint of an interrupted run
        return cmd + self.opts + ["OUTPUT_DIR", self.run_dir]

    def start(self, env: Dict[str, str]) -> None:
        marker = _read_json(self.marker)
        if os.path.isdir(self.run_dir) and (not marker or marker.get("signature") != self.signature()):
            # results of other settings (or of unknown origin) must not be resumed from
            logger.info("  %-22s clearing %s (written with other settings)", self.name, self.run_dir)
            shutil.rmtree(self.run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        _atomic_write(self.marker, json.dumps({"signature": self.signature(), "mIoU": None}, indent=1))
        self.started = time.time()
        log = open(os.path.join(self.run_dir, "stdout.log"), "w")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()

    def finish(self) -> float:
        """Check the finished process and record its result; returns the mIoU."""
        self.seconds = time.time() - self.started
        miou = _summary_miou(self.run_dir, self.dataset)
        if self.proc.returncode != 0 or miou is None:
            tail = ""
            try:
                with open(os.path.join(self.run_dir, "stdout.log")) as f:
                    tail = "".join(f.readlines()[-25:])
            except OSError:
                pass
            raise RuntimeError(f"run '{self.name}' failed (exit code {self.proc.returncode}); its log is "
                               f"{os.path.join(self.run_dir, 'stdout.log')}; last lines:\n{tail}")
        _atomic_write(self.marker, json.dumps({"signature": self.signature(), "mIoU": miou,
                                               "seconds": round(self.seconds, 1)}, indent=1))
        return miou


def run_jobs(jobs: Sequence[Job], parallel: int, env: Dict[str, str]) -> None:
    """Run the jobs that are not done, ``parallel`` at a time, logging progress and an ETA."""
    todo = [j for j in jobs if not j.done()]
    for j in jobs:
        if j not in todo:
            logger.info("  %-22s already done (%s), skipped", j.name, j.marker)
    running: List[Job] = []
    finished, t0 = 0, time.time()
    while todo or running:
        while todo and len(running) < parallel:
            job = todo.pop(0)
            logger.info("  %-22s started (log: %s)", job.name, os.path.join(job.run_dir, "stdout.log"))
            job.start(env)
            running.append(job)
        time.sleep(0.5)
        for job in list(running):
            if job.proc.poll() is None:
                continue
            running.remove(job)
            miou = job.finish()
            finished += 1
            left = len(todo) + len(running)
            eta = (time.time() - t0) / finished * left if left else 0  # finished runs' pace, `parallel` at a time
            logger.info("  %-22s mIoU %.2f  (%.0fs; %d left, ETA %.0fs)", job.name, miou, job.seconds, left, eta)


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return mean, std


def build_results(clip_miou: float, runs: Dict[str, Dict[int, float]], meta: dict) -> dict:
    results = {"clip": {"label": METHOD_LABELS["clip"], "mIoU": {"pretrain_seed0": round(clip_miou, 2)},
                        "mean": round(clip_miou, 2)}}
    for method, per_seed in runs.items():
        values = [per_seed[s] for s in sorted(per_seed)]
        mean, std = _mean_std(values)
        results[method] = {
            "label": METHOD_LABELS.get(method, method),
            "mIoU": {f"seed{s}": round(per_seed[s], 2) for s in sorted(per_seed)},
            "mean": round(mean, 2), "std": round(std, 2), "gain_over_clip": round(mean - clip_miou, 2),
        }
    checks = {}
    if "pixelclip" in results:
        gain = results["pixelclip"]["gain_over_clip"]
        checks["pixelclip_gain"] = gain
        checks["pixelclip_beats_clip_by_5"] = gain >= 5.0
        if "random_masks" in results:
            rgain = results["random_masks"]["gain_over_clip"]
            checks["random_masks_gain"] = rgain
            checks["random_masks_gain_below_half"] = rgain < 0.5 * gain
    results["checks"] = checks
    results["meta"] = meta
    return results


def format_table(results: dict, seeds: Sequence[int]) -> str:
    head = "| Method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | Δ vs CLIP |"
    rule = "|---|" + "---:|" * (len(seeds) + 2)
    rows = [head, rule]
    clip = results["clip"]["mean"]
    rows.append(f"| {results['clip']['label']} | " + " | ".join("–" for _ in seeds) + f" | {clip:.2f} | – |")
    for method, r in results.items():
        if method in ("clip", "checks", "meta"):
            continue
        cells = [f"{r['mIoU'][f'seed{s}']:.2f}" if f"seed{s}" in r["mIoU"] else "–" for s in seeds]
        rows.append(f"| {r['label']} | " + " | ".join(cells) + f" | {r['mean']:.2f} | {r['gain_over_clip']:+.2f} |")
    return "\n".join(rows) + "\n"


def _load_model(config: str, opts: List[str], weights: str):
    from detectron2.checkpoint import DetectionCheckpointer
    from pixelclip import get_pixelclip_cfg
    from pixelclip.trainer import Trainer

    cfg = get_pixelclip_cfg(config, opts)
    model = Trainer.build_model(cfg)
    if weights:
        DetectionCheckpointer(model).load(weights)
    return cfg, model.eval()


def draw_overlays(path: str, dataset: str, panels: List[Tuple[str, str, List[str], str]], num_images: int) -> None:
    """Image | ground truth | one prediction per panel, on the first ``num_images`` validation images.

    ``panels``: (title, config, opts, weights or "") of each model to show.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from matplotlib.patches import Patch

    from pixelclip.data.test_mapper import SemanticTestMapper
    from pixelclip.evaluation import read_label_file

    meta = MetadataCatalog.get(dataset)
    colors = np.array(meta.stuff_colors, np.uint8)
    records = DatasetCatalog.get(dataset)[:num_images]
    columns = [("image", None), ("ground truth", None)] + [(p[0], p) for p in panels]
    preds = {}
    quiet = [logging.getLogger(n) for n in ("", "detectron2", "d2", "fvcore", "pixelclip")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # building a model logs its whole architecture; not wanted in the demo's output
        lg.setLevel(logging.WARNING)
    for title, config, opts, weights in panels:
        cfg, model = _load_model(config, opts, weights)
        model.set_vocabulary(meta.stuff_classes)
        mapper = SemanticTestMapper(cfg)
        with torch.no_grad():
            outs = model([mapper(r) for r in records])
        preds[title] = [o["sem_seg"].argmax(0).numpy() for o in outs]
    for lg, level in zip(quiet, levels):
        lg.setLevel(level)
    fig, axes = plt.subplots(len(records), len(columns), figsize=(2.2 * len(columns), 2.2 * len(records) + 0.9),
                             squeeze=False)
    for i, rec in enumerate(records):
        image = plt.imread(rec["file_name"])
        label = read_label_file(rec["sem_seg_file_name"])
        for j, (title, _) in enumerate(columns):
            ax = axes[i, j]
            if title == "image":
                ax.imshow(image)
            elif title == "ground truth":
                ax.imshow(colors[np.clip(label, 0, len(colors) - 1)])
            else:
                ax.imshow(colors[preds[title][i]])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    handles = [Patch(color=colors[c] / 255.0, label=name) for c, name in enumerate(meta.stuff_classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def draw_curves(path: str, run_dirs: Dict[str, str]) -> None:
    """Training loss vs iteration of every fine-tuning run (D2's metrics.json)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    cmap = plt.get_cmap("tab10")
    methods = sorted({name.rsplit("_seed", 1)[0] for name in run_dirs})
    for name, run_dir in sorted(run_dirs.items()):
        method, seed = name.rsplit("_seed", 1)
        xs, ys = [], []
        try:
            with open(os.path.join(run_dir, "metrics.json")) as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    loss = rec.get("loss_masks", rec.get("total_loss"))
                    if "iteration" in rec and loss is not None:
                        xs.append(rec["iteration"] + 1)
                        ys.append(loss)
        except OSError:
            continue
        style = ["-", "--", ":", "-."][int(seed) % 4]
        ax.plot(xs, ys, style, color=cmap(methods.index(method) % 10), marker=".",
                label=f"{METHOD_LABELS.get(method, method)}, seed {seed}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (BCE, loss_masks)")
    ax.set_title("PixelCLIP fine-tuning on the synthetic world")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/demo", help="output folder (%(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="fine-tuning seeds (%(default)s)")
    p.add_argument("--methods", nargs="+", default=list(MAIN_METHODS), choices=MAIN_METHODS + ABLATIONS,
                   help="fine-tuning methods (configs/synthetic/<method>.yaml)")
    p.add_argument("--ablations", action="store_true", help=f"also run {', '.join(ABLATIONS)} (with --ablation-seeds)")
    p.add_argument("--ablation-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--clip-weights", default="",
                   help="tiny CLIP checkpoint; pre-trained there if missing (default: the shipped "
                        "pixelclip/synthetic/weights file, else <output>/tiny_clip/synthetic_clip_vit_seed0.pt)")
    p.add_argument("--retrain-clip", action="store_true",
                   help="pre-train the tiny CLIP into <output>/tiny_clip/ even if shipped weights exist")
    p.add_argument("--pretrain-steps", type=int, default=None, help="pre-training steps (default: the script's)")
    p.add_argument("--world-root", default="", help="where the world's files live (default "
                   "$PIXELCLIP_SYNTHETIC_ROOT or $DETECTRON2_DATASETS/synthetic)")
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
    from pixelclip.synthetic.storage import ensure_world

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

    # 3. CLIP baseline
    t = time.time()
    logger.info("stage 3/5: evaluating the pre-trained tiny CLIP (no fine-tuning)")
    clip_job = Job("clip", os.path.join(CONFIG_DIR, "clip_baseline.yaml"), os.path.join(out, "clip"),
                   common, eval_only=True, dataset=dataset)
    run_jobs([clip_job], 1, dict(env, OMP_NUM_THREADS=str(cores), MKL_NUM_THREADS=str(cores)))
    clip_miou = _read_json(clip_job.marker)["mIoU"]
    timings["clip_eval"] = round(time.time() - t, 1)

    # 4. fine-tuning runs
    t = time.time()
    plan = [(m, s) for m in args.methods for s in args.seeds]
    if args.ablations:
        plan += [(m, s) for m in ABLATIONS if m not in args.methods for s in args.ablation_seeds]
    jobs_list = [Job(f"{m}_seed{s}", os.path.join(CONFIG_DIR, f"{m}.yaml"), os.path.join(out, f"{m}_seed{s}"),
                     common + ["SEED", str(s)], eval_only=False, dataset=dataset) for m, s in plan]
    logger.info("stage 4/5: %d fine-tuning runs, %d at a time, %d thread(s) each", len(jobs_list), jobs, threads)
    run_jobs(jobs_list, jobs, env)
    timings["finetune"] = round(time.time() - t, 1)

    # 5. report
    t = time.time()
    runs: Dict[str, Dict[int, float]] = {}
    for job, (m, s) in zip(jobs_list, plan):
        runs.setdefault(m, {})[s] = _read_json(job.marker)["mIoU"]
    meta = {
        "weights": os.path.relpath(weights, REPO) if weights.startswith(REPO) else weights,
        "pretrain": pretrain_summary or (_pretrain_meta(weights)),
        "world": {"root": root, **spec.to_dict()},
        "opts": common[2:],
        "quick": bool(args.quick),
        "threads_per_run": threads, "parallel_runs": jobs,
    }
    results = build_results(clip_miou, runs, meta)
    table = format_table(results, sorted(set(args.seeds) | (set(args.ablation_seeds) if args.ablations else set())))
    logger.info("stage 5/5: overlays and curves")
    seed0 = args.seeds[0]
    panels = [("CLIP", clip_job.config, common, "")]
    for m in args.methods:
        run_dir = os.path.join(out, f"{m}_seed{seed0}")
        panels.append((METHOD_LABELS[m].replace("PixelCLIP, ", "").replace(" (SAM-like masks)", "") if m != "pixelclip"
                       else "PixelCLIP", os.path.join(CONFIG_DIR, f"{m}.yaml"), common,
                       os.path.join(run_dir, "model_final.pth")))
    draw_overlays(os.path.join(out, "overlays.png"), dataset, panels, args.num_overlays)
    draw_curves(os.path.join(out, "training_curves.png"), {j.name: j.run_dir for j in jobs_list})
    timings["report"] = round(time.time() - t, 1)
    timings["total"] = round(time.time() - t_start, 1)
    results["meta"]["seconds_this_invocation"] = timings
    results["meta"]["seconds_per_run"] = {j.name: (_read_json(j.marker) or {}).get("seconds")
                                          for j in [clip_job] + jobs_list}

    _atomic_write(os.path.join(out, "results.json"), json.dumps(results, indent=1) + "\n")
    checks = results["checks"]
    lines = [table]
    if "pixelclip_gain" in checks:
        lines.append(f"PixelCLIP gain over CLIP: {checks['pixelclip_gain']:+.2f} mIoU (mean of seeds "
                     f"{', '.join(map(str, args.seeds))}; the claim needs >= +5)")
    if "random_masks_gain" in checks:
        lines.append(f"random-mask control gain: {checks['random_masks_gain']:+.2f} mIoU (the claim needs less "
                     f"than half of PixelCLIP's gain)")
    if args.quick:
        lines.append("(--quick: a few iterations of each stage; these numbers are not a result)")
    text = "\n".join(lines) + "\n"
    _atomic_write(os.path.join(out, "results.md"),
                  "# Synthetic-world demo: mIoU on synthetic_val_sem_seg\n\n" + text
                  + f"\nSeconds per stage of this invocation: {json.dumps(timings)}\n")
    print("\n" + text)
    print(f"wrote {out}/results.json, results.md, overlays.png, training_curves.png "
          f"({timings['total']:.0f}s)")
    return 0


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
