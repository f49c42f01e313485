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
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

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
# small helpers
# ----------------------------------------------------------------------------------------------
def atomic_write(path: str, data=None, **kwargs) -> str:
    """pixelclip.utils.io.atomic_write, imported on first use: importing pixelclip registers the synthetic
    datasets, which must see the world's location that main() puts in the environment first."""
    from pixelclip.utils.io import atomic_write as write

    return write(path, data, **kwargs)


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
        atomic_write(self.marker, json.dumps({"signature": self.signature(), "mIoU": None}, indent=1))
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
        atomic_write(self.marker, json.dumps({"signature": self.signature(), "mIoU": miou,
                                               "seconds": round(self.seconds, 1)}, indent=1))
        return miou


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished (waited-for) children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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

    from pixelclip.data.mappers.semantic_test_dataset_mapper import SemanticTestMapper
    from pixelclip.data.label_io import read_label_file

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
    atomic_write(path, writer=lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def measure_headroom(path: str, config: str, opts: List[str], root: str, dataset: str, num_images: int) -> dict:
    """The headroom diagnostic of the pre-trained CLIP (stage 3), cached in ``path`` per config."""
    from detectron2.data import MetadataCatalog

    from pixelclip.synthetic.headroom import measure_world_headroom

    signature = {"config": os.path.relpath(config, REPO), "opts": opts, "root": root, "num_images": num_images,
                 "merged_config_sha1": _config_hash(config, opts), "weights": _file_id(_opt(opts, "MODEL.PIXELCLIP.CLIP_PRETRAINED"))}
    cached = _read_json(path)
    if cached and cached.get("signature") == signature:
        logger.info("  headroom               already done (%s), skipped", path)
        return cached["headroom"]
    quiet = [logging.getLogger(n) for n in ("", "detectron2", "d2", "fvcore", "pixelclip")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        _, model = _load_model(config, opts, "")
        headroom = measure_world_headroom(model, root, MetadataCatalog.get(dataset).stuff_classes, num_images)
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    atomic_write(path, json.dumps({"signature": signature, "headroom": headroom}, indent=1))
    return headroom


def _opt(opts: List[str], key: str) -> str:
    for k, v in zip(opts[::2], opts[1::2]):
        if k == key:
            return v
    return ""


def _file_id(path: str) -> str:
    """size and mtime of a file, so a re-pre-trained CLIP invalidates cached diagnostics."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}-{int(st.st_mtime)}"


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
    from pixelclip.synthetic.report import build_results, draw_curves, format_results_md, training_summary
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
    clip_miou = _read_json(clip_job.marker)["mIoU"]
    headroom = measure_headroom(os.path.join(out, "headroom.json"), clip_config, common, root, dataset,
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
        runs.setdefault(m, {})[s] = _read_json(job.marker)["mIoU"]
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
                            {j.name: _read_json(j.marker)["mIoU"] for j in eval_only_jobs}, meta)
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
    results["meta"]["seconds_per_run"] = {j.name: (_read_json(j.marker) or {}).get("seconds")
                                          for j in [clip_job] + eval_only_jobs + jobs_list}
    # CPU seconds of everything this invocation ran (its own process and the train_net runs): on a shared
    # machine the wall time depends on the load, the CPU time much less
    own = resource.getrusage(resource.RUSAGE_SELF)
    results["meta"]["cpu_seconds_this_invocation"] = round(own.ru_utime + own.ru_stime + _children_cpu_seconds(), 1)
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
