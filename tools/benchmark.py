#!/usr/bin/env python
"""Speed and memory of PixelCLIP at the paper's settings, printed as tables (random weights).

    python tools/benchmark.py                          # CPU: train step, inference, --eval-only path
    python tools/benchmark.py --device cuda --train-batch 48
    python tools/benchmark.py --tasks eval             # labels path vs backbone, release-style, K×H×W
    python tools/benchmark.py --tasks eval-parts       # the --eval-only path part by part
    python tools/benchmark.py --tasks train-profile    # the training step by part, batch 2 and 4
    python tools/benchmark.py --tasks train-compare --profile-batches 2   # vs commit --baseline

Tasks:
  train          training steps (ViT-B/16, 320² CLIP input, 640² crops, K = 64, SAM-like masks)
  infer          inference on 640×853 images (whole-image mode, 150 classes)
  eval           per score regime (--regimes): the dense backbone alone, the end-to-end ``--eval-only``
                 path (``Trainer.test``: data loader, model with labels output, SemSegEvaluator, summary),
                 the release's path (batch 1, K×H×W logits by D2's sem_seg_postprocess, arg-max in the
                 evaluator) and this project's batched K×H×W logits path, on a generated
                 ADE20K-150-layout folder (512×683 images); speeds, ratios, label differences
  eval-parts     where the ``--eval-only`` time goes: each part (test mapper, CLIP preprocessing, backbone,
                 cosine scores, labels, evaluator) timed on its own over the eval task's images
  train-profile  one training step timed by part (student, teacher, prompts, clustering, decoder, optimizer)
  train-compare  whole training steps of this checkout against the commit ``--baseline``, alternating
                 processes (each imports its own pixelclip: ``--code-root``)
  text           the text embeddings of a --num-classes vocabulary with the imagenet_select templates: first
                 encoding vs a new model of the same weights reading them from the disk cache (a second run)
  gpu            the GPU readiness check (tools/gpu_check.sh): training steps in fp32 / TF32 / AMP fp16 / bf16
                 (finite, features close to fp32) beside the release-style path, train_net.py --num-gpus 1 with
                 AMP then --eval-only on generated data, a one-process NCCL run; exits 1 with one line on a
                 failure or without CUDA. --device cpu --dry-run: the same code, tiny CLIP, seconds
Peak memory: CUDA's max allocated memory, or the growth of resident memory (RSS) on CPU.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# --code-root: import pixelclip from another checkout (e.g. the commit before a change) for --tasks train;
# the benchmark's own inputs and timing stay these.
CODE_ROOT = sys.argv[sys.argv.index("--code-root") + 1] if "--code-root" in sys.argv else REPO
sys.path.insert(0, CODE_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.evaluation import inference_on_dataset  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.modeling.postprocessing import sem_seg_postprocess  # noqa: E402
from detectron2.structures import BitMasks, Instances  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from PIL import Image  # noqa: E402
from tabulate import tabulate  # noqa: E402

import pixelclip  # noqa: E402,F401
from pixelclip import add_pixelclip_config  # noqa: E402
from pixelclip.evaluation import PixelCLIPSemSegEvaluator, SemSegLabelLoader  # noqa: E402
from pixelclip.modeling.pixelclip import PixelCLIP  # noqa: E402
from pixelclip.solver import build_optimizer  # noqa: E402


class PeakMemory:
    """Peak memory of a block: CUDA max allocated, or RSS growth sampled every 5 ms on CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _sample(self):
        while not self._stop.is_set():
            self._max = max(self._max, self._rss_mb())
            time.sleep(0.005)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._max = self._rss_mb()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = self._max - self._start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], None], device: torch.device, iters: int, warmup: int = 1) -> float:
    """Seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


class ModuleClock:
    """Wall-clock seconds spent inside ``module``'s forward calls while the context is open (forward
    hooks; the device is synchronised at both ends of each call)."""

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.module, self.device, self.seconds = module, device, 0.0

    def _start(self, *_):
        _sync(self.device)
        self._t0 = time.perf_counter()

    def _stop(self, *_):
        _sync(self.device)
        self.seconds += time.perf_counter() - self._t0

    def __enter__(self):
        self.seconds = 0.0
        self._hooks = [self.module.register_forward_pre_hook(self._start),
                       self.module.register_forward_hook(self._stop)]
        return self

    def __exit__(self, *exc):
        for hook in self._hooks:
            hook.remove()


STEP_HEADERS = ["what", "batch", "s / batch or image", "images / s", "peak MB"]
EVAL_HEADERS = ["regime", "path", "batch", "s / image", "images / s", "vs backbone", "backbone in run", "vs release",
                "peak MB", "labels ≠ --eval-only"]


def make_cfg(args) -> "CfgNode":  # noqa: F821
    try:  # the paper's recipe (configs/Base-PixelCLIP.yaml)
        from pixelclip import get_pixelclip_cfg
        cfg = get_pixelclip_cfg()
    except ImportError:  # a --code-root baseline from before the recipe file: its config function held the recipe
        cfg = get_cfg()
        add_pixelclip_config(cfg)
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.PIXELCLIP.CLIP_MODEL_NAME = args.model
    cfg.MODEL.PIXELCLIP.CLIP_PRETRAINED = ""  # random weights: timing only
    cfg.MODEL.PIXELCLIP.CLIP_RESOLUTION = (args.clip_resolution, args.clip_resolution)
    cfg.MODEL.PIXELCLIP.TEST.TEMPLATES = "single"
    cfg.MODEL.PIXELCLIP.TEST.AUTOCAST = args.autocast
    cfg.DATASETS.TEST = ()
    cfg.TEST.IMS_PER_BATCH = args.test_batch
    cfg.DATALOADER.NUM_WORKERS = args.workers
    return cfg


def sam_like_masks(crop: int, num_masks: int, generator: torch.Generator) -> torch.Tensor:
    """``num_masks`` overlapping elliptic masks (crop×crop bool) of log-uniform areas from 0.02 % to
    20 % of the crop, at random places and orientations: nested and over-segmented like SAM's
    automatic masks; a few vanish at the mask resolution (256²) and are dropped."""
    yy, xx = torch.meshgrid(torch.arange(crop, dtype=torch.float32), torch.arange(crop, dtype=torch.float32),
                            indexing="ij")
    u = torch.rand(num_masks, 5, generator=generator)
    area = crop * crop * torch.exp(np.log(2e-4) + u[:, 0] * (np.log(0.2) - np.log(2e-4)))
    aspect = 0.4 + 2.1 * u[:, 1]
    ry, rx = (area / np.pi * aspect).sqrt(), (area / np.pi / aspect).sqrt()
    cy, cx, angle = u[:, 2] * crop, u[:, 3] * crop, u[:, 4] * np.pi
    dy, dx = yy[None] - cy[:, None, None], xx[None] - cx[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    return ((dy * cos + dx * sin) / ry[:, None, None]) ** 2 + ((dx * cos - dy * sin) / rx[:, None, None]) ** 2 <= 1


def train_inputs(batch: int, crop: int, num_masks: int, device) -> List[Dict]:
    """``batch`` random crop×crop images (a weak and a colour-shifted strong view) with SAM-like masks."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        inst = Instances((crop, crop))
        inst.gt_masks = BitMasks(sam_like_masks(crop, num_masks, g))
        image = torch.randint(0, 256, (3, crop, crop), dtype=torch.uint8, generator=g)
        strong = (image.float() * torch.tensor([0.8, 1.1, 0.9])[:, None, None] + 12).clamp(0, 255).round().to(torch.uint8)
        out.append({"image": image, "image_strong": strong, "instances": inst})
    return out


def _train_step(model, optimizer, inputs) -> None:
    loss = model(inputs)["loss_masks"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def bench_train(args, cfg, device) -> List:
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    inputs = train_inputs(args.train_batch, args.crop, args.num_masks, device)
    seconds = []
    with PeakMemory(device) as mem:  # the warm-up step included: its allocations count
        for i in range(args.iters + 1):
            t = timed(lambda: _train_step(model, optimizer, inputs), device, iters=1, warmup=0)
            if i:
                seconds.append(t)
    if args.json:
        print("RESULT " + json.dumps({"seconds": seconds, "peak_mb": mem.peak_mb}))
    step = float(np.median(seconds))
    return STEP_HEADERS, [["train step", args.train_batch, f"{step:.3f}", f"{args.train_batch / step:.2f}",
                           f"{mem.peak_mb:.0f}"]], []


TRAIN_PARTS = ["inputs (views, masks to 256²)", "teacher forward (EMA step + no-grad ViT)", "student forward",
               "prompts through the text encoder (forward)", "clustering (pooling, Sinkhorn, targets)",
               "cost volume + decoder + BCE (forward)", "cost volume + decoder + BCE (backward)", "student backward",
               "text encoder backward (to the prompt tokens)", "optimizer (clip + AdamW)"]


def _profiled_step(model, optimizer, inputs, device) -> List[float]:
    """One training step of PixelCLIP (the same calls as ``PixelCLIP.losses``) timed by part, seconds in
    the order of ``TRAIN_PARTS``. The backward pass is split at the student features and the prompt
    embeddings (detached there, then back-propagated in turn): the same gradients as one backward."""
    from pixelclip.modeling.clustering import cluster_targets

    times = []

    def lap(fn):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        return out

    weak, strong, masks = lap(lambda: (model.preprocess.batch([x["image"] for x in inputs]),
                                       model.preprocess.batch([x["image_strong"] for x in inputs]),
                                       model._masks_of(inputs)))
    teacher = lap(lambda: model.teacher_features(weak))
    student = lap(lambda: model.backbone(strong)["clip_dense"])
    prompts = lap(model.prompts)
    targets, valid, _ = lap(lambda: cluster_targets(teacher, masks, prompts.detach(), model.eps, model.sinkhorn_iters))
    student_leaf, prompts_leaf = student.detach().requires_grad_(), prompts.detach().requires_grad_()
    optimizer.zero_grad()
    loss = lap(lambda: model.mask_loss(student_leaf, prompts_leaf, targets, valid))
    lap(loss.backward)
    lap(lambda: student.backward(student_leaf.grad))
    lap(lambda: prompts.backward(prompts_leaf.grad))
    lap(optimizer.step)
    return times


def bench_train_profile(args, cfg, device) -> List:
    """The training step by part at batch sizes ``--profile-batches`` (medians of ``--iters`` steps after
    one warm-up step, interleaved with as many whole steps, ``model(inputs)`` + backward + optimizer)."""
    batches = [int(b) for b in args.profile_batches.split(",")]
    columns, totals = [], []
    for b in batches:
        model = build_model(cfg).train()
        optimizer = build_optimizer(cfg, model)
        inputs = train_inputs(b, args.crop, args.num_masks, device)
        _train_step(model, optimizer, inputs)  # warm-up
        parts, whole = [], []
        for _ in range(args.iters):
            parts.append(_profiled_step(model, optimizer, inputs, device))
            whole.append(timed(lambda: _train_step(model, optimizer, inputs), device, iters=1, warmup=0))
        columns.append(np.median(np.array(parts), axis=0))
        totals.append(float(np.median(whole)))
        del model, optimizer
    rows = []
    for i, name in enumerate(TRAIN_PARTS):
        row = [name]
        for col in columns:
            row += [f"{col[i]:.2f}", f"{100 * col[i] / col.sum():.0f} %"]
        rows.append(row)
    rows.append(["sum of the parts"] + [x for col in columns for x in (f"{col.sum():.2f}", "100 %")])
    rows.append(["whole step (model(inputs), backward, optimizer)"] + [x for t in totals for x in (f"{t:.2f}", "")])
    headers = ["part"] + [x for b in batches for x in (f"batch {b}: s", "share")]
    masks = f"{args.num_masks} SAM-like masks per {args.crop}² image (tools/benchmark.py sam_like_masks)"
    return headers, rows, [masks, f"medians of {args.iters} steps after one warm-up step"]


def bench_train_compare(args, cfg, device) -> List:
    """This checkout's training step against the commit ``--baseline`` (extracted with ``git archive``
    into a temporary folder), each run in its own process (``--tasks train --code-root``), alternating
    baseline / current ``--compare-repeats`` times per batch size; medians of the step times."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", REPO, "archive", args.baseline], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        for b in [int(x) for x in args.profile_batches.split(",")]:
            results = {"baseline": [], "current": []}
            for _ in range(args.compare_repeats):
                for key, root in (("baseline", tmp), ("current", REPO)):
                    cmd = [sys.executable, os.path.abspath(__file__), "--tasks", "train", "--json", "--code-root", root,
                           "--train-batch", str(b), "--iters", str(args.compare_iters), "--crop", str(args.crop),
                           "--num-masks", str(args.num_masks), "--clip-resolution", str(args.clip_resolution),
                           "--model", args.model, "--device", args.device, "--threads", str(torch.get_num_threads())]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    results[key].append(json.loads(out.split("RESULT ", 1)[1].splitlines()[0]))
            step = {k: float(np.median([s for r in v for s in r["seconds"]])) for k, v in results.items()}
            peak = {k: max(r["peak_mb"] for r in v) for k, v in results.items()}
            spread = {k: "–".join(f"{min(s for r in v for s in r['seconds']):.1f} {max(s for r in v for s in r['seconds']):.1f}".split())
                      for k, v in results.items()}
            rows += [[f"baseline {args.baseline}", b, f"{step['baseline']:.2f} ({spread['baseline']})",
                      f"{b / step['baseline']:.3f}", f"{peak['baseline']:.0f}", "1.00×"],
                     ["current", b, f"{step['current']:.2f} ({spread['current']})", f"{b / step['current']:.3f}",
                      f"{peak['current']:.0f}", f"{step['baseline'] / step['current']:.2f}×"]]
    headers = ["code", "batch", "s / step (range)", "images / s", "peak MB", "speed-up"]
    return headers, rows, [f"{args.compare_repeats} alternating processes per code and batch, {args.compare_iters} timed "
                           "step(s) each after one warm-up step; peak MB: RSS growth over the steps, warm-up included"]


def bench_infer(args, cfg, device) -> List:
    model = build_model(cfg).eval()
    model.set_vocabulary([f"class {i}" for i in range(args.num_classes)])
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 256, (3, 640, 853), dtype=torch.uint8, generator=g), "height": 640,
               "width": 853} for _ in range(args.test_batch)]
    with torch.no_grad(), PeakMemory(device) as mem:
        seconds = timed(lambda: model(inputs), device, args.iters)
    return STEP_HEADERS, [["inference", args.test_batch, f"{seconds:.3f}", f"{args.test_batch / seconds:.2f}",
                           f"{mem.peak_mb:.0f}"]], []


def write_ade_layout(root: str, num_images: int, num_classes: int, size=(512, 683)) -> None:
    """``num_images`` random JPEGs and label PNGs in ADEChallengeData2016's prepared layout."""
    rng = np.random.default_rng(0)
    base = os.path.join(root, "ADEChallengeData2016")
    for i in range(num_images):
        stem = f"ADE_val_{i + 1:08d}"
        img_dir, lbl_dir = os.path.join(base, "images", "validation"), os.path.join(base, "annotations_detectron2", "validation")
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(lbl_dir, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(os.path.join(img_dir, stem + ".jpg"))
        labels = rng.integers(0, num_classes, (size[0] // 32 + 1, size[1] // 32 + 1)).repeat(32, 0).repeat(32, 1)
        Image.fromarray(labels[: size[0], : size[1]].astype(np.uint8)).save(os.path.join(lbl_dir, stem + ".png"))


REGIMES = {
    "random": "the random model's cosine scores as they are",
    "near-tie": "each pixel's scores shrunk towards their mean, s' = m + (s - m)·0.9e-3 / (the image's largest "
                "max-min spread): all 150 classes within 0.9e-3 at every pixel, the same arg-max as random",
    "separated": "1.0 added to each pixel's best score (far above the spread of the raw scores)",
    "noise": "s' = 0.2 + 1e-3·frac(1e4·|s|): near-ties without spatial structure (the worst case of the labels path)",
}


def regime_scores(logits: torch.Tensor, regime: str) -> torch.Tensor:
    """B×K×r×r cosine scores -> the same scores in a score ``regime`` (see ``REGIMES``)."""
    if regime == "random":
        return logits
    if regime == "near-tie":
        mean = logits.mean(1, keepdim=True)
        spread = (logits.amax(1) - logits.amin(1)).flatten(1).amax(1).clamp_min(1e-12)  # B: per image
        return mean + (logits - mean) * (0.9e-3 / spread)[:, None, None, None]
    if regime == "separated":
        return logits + F.one_hot(logits.argmax(1), logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    if regime == "noise":
        return 0.2 + 1e-3 * torch.frac(1e4 * logits.abs())
    raise ValueError(f"unknown score regime '{regime}' ({', '.join(REGIMES)})")


class BenchmarkPixelCLIP(PixelCLIP):
    """PixelCLIP whose low-resolution scores are put in a score regime, and which can also run
    inference the way the authors' release does (``release_style``). Benchmark only."""

    regime = "random"
    release_style = False

    def _score(self, images, text):
        return regime_scores(super()._score(images, text), self.regime)

    def inference(self, batched_inputs):
        if not self.release_style:
            return super().inference(batched_inputs)
        # The release's evaluation: one image per call; the image normalised at its size, then resized
        # to the CLIP input; dense features (h×w×C in its memory layout) resized to 64×64 and
        # normalised; K×64×64 cosine logits; D2's sem_seg_postprocess to the image's size (K×H×W); the
        # evaluator takes the arg-max.
        text = self.classifier(self.vocabulary).to(self.device)
        results = []
        for x in batched_inputs:
            image = self.preprocess.normalize(x["image"])[None]
            image = F.interpolate(image, size=self.clip_resolution, mode="bilinear", align_corners=False)
            feats = self.backbone(image)["clip_dense"].permute(0, 2, 3, 1).contiguous()  # 1×h×w×C
            r = self.test_feature_resolution
            feats = F.interpolate(feats.permute(0, 3, 1, 2), size=(r, r), mode="bilinear", align_corners=False)
            logits = F.normalize(feats.permute(0, 2, 3, 1), dim=-1) @ text.t()  # 1×r×r×K
            logits = regime_scores(logits.permute(0, 3, 1, 2), self.regime)[0]
            size = tuple(x["image"].shape[-2:])
            results.append({"sem_seg": sem_seg_postprocess(logits, size, x.get("height", size[0]),
                                                           x.get("width", size[1]))})
        return results


class RecordingEvaluator(PixelCLIPSemSegEvaluator):
    """The evaluator of ``Trainer.test``, keeping each image's predicted labels (no extra work)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.labels: Dict[str, np.ndarray] = {}

    def _prediction(self, inp, out):
        labels = super()._prediction(inp, out)
        self.labels[inp["file_name"]] = labels
        return labels


def _score_gap(low_res: torch.Tensor, size, pixels: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |score_a - score_b| (float64 bilinear upsampling of K×h×w ``low_res`` to ``size``) at
    the given pixels (n×2: row, column)."""
    from pixelclip.modeling.postprocess import _Grid

    if len(pixels) == 0:
        return 0.0
    grid = _Grid(low_res.shape[1], low_res.shape[2], size[0], size[1], "cpu")
    lr = F.pad(low_res.double()[None], (0, 1, 0, 1), mode="replicate")[0]
    y, x = pixels[:, 0], pixels[:, 1]
    a0, c0 = grid.ys[y], grid.xs[x]
    wy0, wy1, wx0, wx1 = (t.double() for t in (grid.wy0[y], grid.wy1[y], grid.wx0[x], grid.wx1[x]))

    def score(k):
        return (wy0 * (wx0 * lr[k, a0, c0] + wx1 * lr[k, a0, c0 + 1])
                + wy1 * (wx0 * lr[k, a0 + 1, c0] + wx1 * lr[k, a0 + 1, c0 + 1]))

    return float((score(a) - score(b)).abs().max())


def eval_dataset(root: str, args, cfg) -> Tuple["CfgNode", str]:  # noqa: F821
    """``args.eval_images`` generated ADE20K-150 images under ``root``, registered as the test set of a
    copy of ``cfg`` (outputs under ``root``) -> (that config, the dataset's name)."""
    from pixelclip.data.datasets.ade20k import register_ade20k_150

    write_ade_layout(root, args.eval_images, 150)
    name = "benchmark_ade20k_150"
    for old in (name, f"pixelclip_{name}"):  # a previous task's registration points to its deleted folder
        if old in DatasetCatalog.list():
            DatasetCatalog.remove(old)
        if old in MetadataCatalog.list():
            MetadataCatalog.remove(old)
    register_ade20k_150(root, name=name)
    cfg = cfg.clone()
    cfg.DATASETS.TEST = (name,)
    cfg.OUTPUT_DIR = os.path.join(root, "output")
    return cfg, name


def bench_eval(args, cfg, device) -> List:
    """Per score regime: the dense backbone alone, ``--eval-only`` (Trainer.test, labels output), the
    release's path (batch 1, K×H×W logits, arg-max) and this project's K×H×W logits path (batched)."""
    from pixelclip.data.mappers import SemanticTestMapper
    from pixelclip.trainer import Trainer

    regimes = args.regimes.split(",")
    for regime in regimes:
        if regime not in REGIMES:
            raise ValueError(f"unknown score regime '{regime}' ({', '.join(REGIMES)})")
    rows, stats = [], []
    with tempfile.TemporaryDirectory() as root:
        cfg, name = eval_dataset(root, args, cfg)
        single = cfg.clone()
        single.TEST.IMS_PER_BATCH = 1
        torch.manual_seed(args.seed)  # random weights: which classes win where depends on them
        model = BenchmarkPixelCLIP(cfg).to(device).eval()
        model.set_vocabulary(get_stuff_classes(name))
        # backbone alone, on the same images as the model sees them (mapped, CLIP-normalised, resized)
        mapper = SemanticTestMapper(cfg)
        records = [mapper(d) for d in DatasetCatalog.get(name)]
        batches = [records[i:i + args.test_batch] for i in range(0, len(records), args.test_batch)]
        clip_batches = [model.preprocess.batch([r["image"] for r in b]) for b in batches]
        loader = Trainer.build_test_loader(cfg, name)
        loader_single = Trainer.build_test_loader(single, name)
        meta = MetadataCatalog.get(name)
        evaluators = {key: RecordingEvaluator(name, distributed=False, output_dir=None,
                                              sem_seg_loading_fn=SemSegLabelLoader(len(meta.stuff_classes),
                                                                                   meta.ignore_label))
                      for key in ("eval", "release", "plain")}

        def backbone_alone():
            for x in clip_batches:
                model.backbone(x)

        def eval_only():  # what tools/train_net.py --eval-only runs
            Trainer.test(cfg, model, evaluators=[evaluators["eval"]])

        def release_style():
            model.release_style = True
            try:
                inference_on_dataset(model, loader_single, evaluators["release"])
            finally:
                model.release_style = False

        def plain():  # K×H×W logits upsampled in one batched call, arg-max in the evaluator
            inference_on_dataset(model, loader, evaluators["plain"])

        paths = {"backbone": backbone_alone, "eval": eval_only, "release": release_style, "plain": plain}
        n = len(records)
        with torch.no_grad():
            model.backbone(clip_batches[0])  # warm-up
            model([dict(r) for r in batches[0]])  # warm-up, fills the vocabulary cache
            for regime in regimes:
                model.regime = regime
                runs: Dict[str, list] = {k: [] for k in paths}
                # Interleaved repeats, medians: the paths see the same machine state.
                inside = []  # per --eval-only run: the share of its time spent in the backbone
                for _ in range(args.eval_repeats):
                    for key, fn in paths.items():
                        with PeakMemory(device) as mem, ModuleClock(model.backbone, device) as clock:
                            runs[key].append((timed(fn, device, iters=1, warmup=0), mem))
                        if key == "eval":
                            inside.append(clock.seconds / runs[key][-1][0])
                seconds = {k: float(np.median([t for t, _ in v])) for k, v in runs.items()}
                peak = {k: max(m.peak_mb for _, m in v) for k, v in runs.items()}
                # Label differences against --eval-only, and how far apart the two labels' scores are there
                # (float64 upsampling of the batched path's low-resolution scores).
                low_res = {}
                for b, x in zip(batches, clip_batches):
                    for r, lg in zip(b, model._score(x, model.classifier(model.vocabulary))):
                        low_res[r["file_name"]] = lg
                ours = evaluators["eval"].labels
                diff = {}
                for key in ("release", "plain"):
                    changed, gap = 0, 0.0
                    for f, lb in evaluators[key].labels.items():
                        mask = torch.from_numpy(lb != ours[f])
                        pixels = mask.nonzero()
                        changed += len(pixels)
                        gap = max(gap, _score_gap(low_res[f], lb.shape, pixels, torch.from_numpy(ours[f])[mask],
                                                  torch.from_numpy(lb)[mask]))
                    diff[key] = f"{changed}" + (f" (gap ≤ {gap:.0e})" if changed else "")
                pixels = sum(lb.size for lb in ours.values())
                scores = torch.stack(list(low_res.values()))  # N×K×r×r
                top2 = scores.topk(2, dim=1).values
                winner = F.pad(scores.argmax(1)[:, None].float(), (0, 1, 0, 1), mode="replicate")[:, 0]
                mixed = ((winner[:, :-1, :-1] != winner[:, 1:, :-1]) | (winner[:, :-1, :-1] != winner[:, :-1, 1:])
                         | (winner[:, :-1, :-1] != winner[:, 1:, 1:]))
                stats.append(f"{regime}: per-pixel score spread ≤ {float((scores.amax(1) - scores.amin(1)).max()):.2g}, "
                             f"median top-2 gap {float((top2[:, 0] - top2[:, 1]).median()):.2g}, "
                             f"{100 * float(mixed.float().mean()):.0f} % of the {scores.shape[-1]}² cells hold a label "
                             "boundary (their corners' arg-max differ)")
                spread = ", ".join(f"{100 * b / e:.0f}" for (b, _), (e, _) in zip(runs["backbone"], runs["eval"]))
                base = seconds["backbone"]
                rows += [
                    [regime, "dense backbone alone", args.test_batch, f"{base / n:.3f}", f"{n / base:.2f}", "100 %",
                     "", "", "-", ""],
                    [regime, f"--eval-only (labels; repeats: {spread} %)", args.test_batch,
                     f"{seconds['eval'] / n:.3f}", f"{n / seconds['eval']:.2f}",
                     f"{100 * base / seconds['eval']:.0f} %", f"{100 * float(np.median(inside)):.1f} %",
                     f"{seconds['release'] / seconds['eval']:.2f}×", f"{peak['eval']:.0f}", f"0 of {pixels}"],
                    [regime, "release-style (K×H×W, batch 1)", 1, f"{seconds['release'] / n:.3f}",
                     f"{n / seconds['release']:.2f}", f"{100 * base / seconds['release']:.0f} %", "", "1.00×",
                     f"{peak['release']:.0f}", diff["release"]],
                    [regime, "K×H×W logits, batched", args.test_batch, f"{seconds['plain'] / n:.3f}",
                     f"{n / seconds['plain']:.2f}", f"{100 * base / seconds['plain']:.0f} %", "",
                     f"{seconds['release'] / seconds['plain']:.2f}×", f"{peak['plain']:.0f}", diff["plain"]],
                ]
    notes = [f"{k}: {v}" for k, v in REGIMES.items() if k in regimes] + stats + [
        "vs backbone: backbone-alone time / path time (medians of the repeats); backbone in run: the share of "
        "each --eval-only run's own time spent in the backbone's forward (median), paired within the run, so "
        "not moved by the machine's speed changing between runs; vs release: release-style time / path time",
        "labels ≠ --eval-only: pixels whose label differs (gap: the largest float64 score difference of the two "
        "labels there); every path's evaluator takes the first maximum (max(dim=0).indices)"]
    return EVAL_HEADERS, rows, notes


def bench_eval_parts(args, cfg, device) -> Tuple[List[str], List, List[str]]:
    """The parts of the ``--eval-only`` path (random scores), each timed on its own over the eval task's
    images (interleaved ``--eval-repeats``, medians), per image and as a share of their sum."""
    from pixelclip.modeling.pixelclip import _resized_cosine
    from pixelclip.modeling.postprocess import argmax_labels
    from pixelclip.trainer import Trainer

    with tempfile.TemporaryDirectory() as root:
        cfg, name = eval_dataset(root, args, cfg)
        torch.manual_seed(args.seed)
        model = BenchmarkPixelCLIP(cfg).to(device).eval()
        model.set_vocabulary(get_stuff_classes(name))
        loader = Trainer.build_test_loader(cfg, name)
        meta = MetadataCatalog.get(name)
        evaluator = PixelCLIPSemSegEvaluator(name, distributed=False, output_dir=None,
                                             sem_seg_loading_fn=SemSegLabelLoader(len(meta.stuff_classes),
                                                                                  meta.ignore_label))
        r = model.test_feature_resolution
        with torch.no_grad():
            batches = list(loader)
            text = model.classifier(model.vocabulary).to(device)
            images = [model.preprocess.batch([x["image"] for x in b]) for b in batches]
            features = [model.backbone(x)["clip_dense"] for x in images]
            scores = [_resized_cosine(f, text, (r, r)) for f in features]
            sizes = [[(x["height"], x["width"]) for x in b] for b in batches]
            outputs = [[{"sem_seg_labels": lb} for lb in argmax_labels(sc, sz)] for sc, sz in zip(scores, sizes)]

            def evaluate():
                evaluator.reset()
                for b, out in zip(batches, outputs):
                    evaluator.process(b, out)

            parts = {
                "test mapper (decode the JPEG, resize its short side to 640)": lambda: list(loader),
                "CLIP preprocessing (normalise, resize to the CLIP input)":
                    lambda: [model.preprocess.batch([x["image"] for x in b]) for b in batches],
                "dense backbone": lambda: [model.backbone(x) for x in images],
                f"cosine scores at {r}² (with the resized features' norms)":
                    lambda: [_resized_cosine(f, text, (r, r)) for f in features],
                "labels (upsample_argmax to the image size)":
                    lambda: [argmax_labels(sc, sz) for sc, sz in zip(scores, sizes)],
                "evaluator.process (label file, confusion matrix, boundary IoU, RLE results)": evaluate,
            }
            runs: Dict[str, list] = {k: [] for k in parts}
            for _ in range(args.eval_repeats):
                for key, fn in parts.items():
                    runs[key].append(timed(fn, device, iters=1, warmup=0))
    n = sum(len(b) for b in batches)
    ms = {k: 1000 * float(np.median(v)) / n for k, v in runs.items()}
    total = sum(ms.values())
    rows = [[k, f"{v:.1f}", f"{100 * v / total:.1f} %"] for k, v in ms.items()]
    rest = total - ms["dense backbone"]
    rows.append(["all but the backbone", f"{rest:.1f}", f"{100 * rest / total:.1f} %"])
    notes = [f"{n} images of 512×683, test batch {args.test_batch}, data-loader workers {args.workers}; "
             "the Trainer's own bookkeeping (building the loader and evaluator, metrics, summary) is not a part"]
    return ["part of --eval-only", "ms / image", "share"], rows, notes


def bench_text(args, cfg, device) -> Tuple[List[str], List, List[str]]:
    """First encoding of a vocabulary vs reading it back from the disk cache
    (``pixelclip/clip/text_cache.py``) in a new model with the same weights, as a second run does."""
    from pixelclip.clip.text import get_templates

    text_cfg = cfg.clone()
    text_cfg.MODEL.PIXELCLIP.TEST.TEMPLATES = "imagenet_select"
    names = [f"class {i}" for i in range(args.num_classes)]
    label = f"text embeddings ({args.num_classes} classes × {len(get_templates('imagenet_select'))} templates)"
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for kind in ("first run: encoded", "next runs: disk cache"):
            torch.manual_seed(args.seed)  # the same random weights, so the same cache key
            model = build_model(text_cfg).to(device).eval()
            model.classifier._cache.cache_dir = cache
            with PeakMemory(device) as mem:
                start = time.perf_counter()
                model.classifier(names)
                _sync(device)
                seconds = time.perf_counter() - start
            rows.append([f"{label}, {kind}", args.num_classes, f"{seconds:.3f}",
                         f"{args.num_classes / seconds:.1f}", f"{mem.peak_mb:.0f}"])
            del model
    return STEP_HEADERS, rows, []


# ---------------------------------------------------------------------------------------------- gpu (check)
# training regimes of the gpu task, by key: (what, autocast dtype or None, TF32, masks, gradient checkpointing);
# masks "loader": reduced to MASK_RESOLUTION by the data loader; "copied": full-size masks copied to the device in
# the step and resized there (the release's order)
GPU_REGIMES = {
    "fp32": ("fp32 (TF32 off)", None, False, "loader", False),
    "release": ("release-style: fp32 + TF32, crop-size masks copied then resized", None, True, "copied", False),
    "tf32": ("fp32 + TF32", None, True, "loader", False),
    "fp16": ("AMP fp16", torch.float16, True, "loader", False),
    "bf16": ("AMP bf16", torch.bfloat16, True, "loader", False),
    "bf16-ckpt": ("AMP bf16 + gradient checkpointing", torch.bfloat16, True, "loader", True),
}
# largest relative difference of the student's dense features from fp32 (TF32 and float16 keep 10 mantissa bits,
# bfloat16 7: about 5e-4 and 4e-3 per rounding, grown through 12 blocks); beyond it the check fails
GPU_FEATURE_TOLERANCE = {None: 2e-2, torch.float16: 2e-2, torch.bfloat16: 8e-2}
GPU_HEADERS = ["regime", "batch", "s / step", "images / s", "peak MB", "first loss", "features vs fp32", "finite"]


class GpuCheckFailed(Exception):
    pass


def _set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def _amp_step(model, optimizer, scaler, inputs, dtype, device) -> torch.Tensor:
    """One step as D2's AMPTrainer runs it (autocast forward, scaled backward, scaler step); plain when dtype
    is None."""
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = model(inputs)["loss_masks"]
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def _gpu_regime(args, cfg, device, state, inputs, reduced, regime, reference):
    """Steps of one regime from the same weights and inputs -> (row, features, failure or None)."""
    name, dtype, tf32, masks, checkpointing = regime
    _set_tf32(tf32)
    model = build_model(cfg).train()
    model.load_state_dict(state)
    model.backbone.gradient_checkpointing = checkpointing
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")
    batch = reduced if masks == "loader" else inputs

    def step():
        data = batch if masks == "loader" else [{**x, "instances": x["instances"].to(device)} for x in batch]
        losses.append(_amp_step(model, optimizer, scaler, data, dtype, device))

    with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        feats = model.backbone(model.preprocess.batch([x["image_strong"] for x in batch]))["clip_dense"].float()
    losses, seconds = [], []
    with PeakMemory(device) as mem:
        for i in range(args.iters + 1):  # one warm-up step, then timed steps
            t = timed(step, device, 1, 0)
            if i:
                seconds.append(t)
    finite = all(bool(torch.isfinite(x)) for x in losses) and all(bool(torch.isfinite(p).all())
                                                                   for p in model.parameters())
    gap = float("nan") if reference is None else float((feats - reference).norm() / reference.norm())
    step = float(np.median(seconds))
    failure = None
    if not finite:
        failure = f"{name}: a loss or weight is not finite"
    elif reference is not None and not gap <= GPU_FEATURE_TOLERANCE[dtype]:
        failure = f"{name}: features differ from fp32 by {gap:.2e} (> {GPU_FEATURE_TOLERANCE[dtype]:.0e})"
    row = [name, len(batch), f"{step:.3f}", f"{len(batch) / step:.1f}", f"{mem.peak_mb:.0f}", f"{float(losses[0]):.5f}",
           "reference" if reference is None else f"{gap:.1e}", "yes" if finite else "NO"]
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row, feats, failure


def write_sa1b_layout(root: str, num_images: int, size: int, num_masks: int) -> None:
    """``num_images`` random size×size JPEGs with ``num_masks`` SAM-like masks each, in SA-1B's prepared layout
    (``sa1b/images/sa_000000/sa_<i>.jpg`` + ``sa1b/annotations/...json``)."""
    from pixelclip.data.mask_io import encode_masks, write_mask_file

    g = torch.Generator().manual_seed(0)
    for i in range(1, num_images + 1):
        img = os.path.join(root, "sa1b", "images", "sa_000000", f"sa_{i}.jpg")
        os.makedirs(os.path.dirname(img), exist_ok=True)
        Image.fromarray(torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=g).numpy()).save(img)
        masks = sam_like_masks(size, num_masks, g).numpy()
        info = {"file_name": os.path.basename(img), "height": size, "width": size, "image_id": i}
        ann = os.path.join(root, "sa1b", "annotations", "sa_000000", f"sa_{i}.json")
        write_mask_file(ann, info, encode_masks(masks))


def _train_net_runs(args, device, root: str) -> List:
    """``tools/train_net.py --num-gpus 1`` (AMP on CUDA) on a generated miniature SA-1B, then ``--eval-only`` of its
    final weights on a generated ADE20K-150 folder; each in its own process, as a user runs them."""
    write_sa1b_layout(root, 8 if device.type == "cuda" else 2, args.crop, args.num_masks)
    write_ade_layout(root, 8 if device.type == "cuda" else 2, 150, size=(args.crop, args.crop * 4 // 3))
    out = os.path.join(root, "train_net")
    opts = ["MODEL.DEVICE", str(device), "MODEL.PIXELCLIP.CLIP_MODEL_NAME", args.model,
            "MODEL.PIXELCLIP.CLIP_PRETRAINED", "", "DATASETS.TRAIN", "('sa1b_train',)",
            "DATASETS.TEST", "('ade20k_150_test_sem_seg',)", "OUTPUT_DIR", out, "SOLVER.CHECKPOINT_PERIOD", "100000",
            "INPUT.MIN_SIZE_TRAIN", f"({args.crop},)", "INPUT.CROP.SIZE", f"({args.crop}, {args.crop})",
            "INPUT.MIN_SIZE_TEST", str(args.crop), "DATALOADER.NUM_WORKERS", str(args.workers),
            "MODEL.PIXELCLIP.CLIP_RESOLUTION", f"({args.clip_resolution}, {args.clip_resolution})"]
    if device.type == "cuda":
        opts += ["SOLVER.AMP.ENABLED", "True", "SOLVER.IMS_PER_BATCH", "8", "SOLVER.MAX_ITER", "20",
                 "TEST.IMS_PER_BATCH", "4"]
    else:  # the tiny dry run: AMP is CUDA-only (train_net refuses it on a CPU run)
        opts += ["SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "TEST.IMS_PER_BATCH", "2",
                 "MODEL.PIXELCLIP.NUM_PROMPTS", "8", "MODEL.PIXELCLIP.MASK_RESOLUTION", "32",
                 "MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION", "16", "MODEL.PIXELCLIP.TEST.TEMPLATES", "single"]
    env = dict(os.environ, DETECTRON2_DATASETS=root, HF_HUB_OFFLINE="1", PIXELCLIP_TEXT_CACHE="off")
    tool = os.path.join(REPO, "tools", "train_net.py")
    runs = [("train_net.py --num-gpus 1" + (" (AMP fp16)" if device.type == "cuda" else ""), [], []),
            ("train_net.py --eval-only", ["--eval-only"], ["MODEL.WEIGHTS", os.path.join(out, "model_final.pth")])]
    rows = []
    for what, flags, weights in runs:
        start = time.perf_counter()
        run = subprocess.run([sys.executable, tool, "--num-gpus", "1", *flags, *opts, *weights], env=env,
                             capture_output=True, text=True, cwd=REPO)
        if run.returncode != 0:
            tail = " | ".join((run.stderr or run.stdout).strip().splitlines()[-3:])
            raise GpuCheckFailed(f"{what} exited {run.returncode}: {tail}")
        rows.append([what, f"{time.perf_counter() - start:.1f} s (process, start-up included)"])
    summary = os.path.join(out, "summary.json")
    if not os.path.isfile(summary):
        raise GpuCheckFailed(f"--eval-only wrote no {summary}")
    miou = json.load(open(summary))["ade20k_150_test_sem_seg"]["mIoU"]
    rows.append(["--eval-only mIoU (random weights: only finite matters)", f"{miou:.2f}"])
    if not np.isfinite(miou):
        raise GpuCheckFailed(f"--eval-only gave mIoU {miou}")
    return rows


def _one_process_group_run(args, cfg, device, state, inputs) -> List:
    """A process group of one (NCCL on CUDA, gloo on CPU: pixelclip.launch.dist_backend) and DDP-wrapped training
    steps, which reduce their gradient buckets and Sinkhorn sums through that backend."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from pixelclip.launch import dist_backend

    backend = dist_backend(str(device))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        probe = torch.full((4,), 3.0, device=device)
        dist.all_reduce(probe)
        model = build_model(cfg).train()
        model.load_state_dict(state)
        optimizer = build_optimizer(cfg, model)
        net = DistributedDataParallel(model, device_ids=[device.index or 0] if device.type == "cuda" else None,
                                      broadcast_buffers=False)
        scaler = torch.amp.GradScaler(device.type, enabled=False)
        losses = []
        with PeakMemory(device) as mem:
            seconds = timed(lambda: losses.append(_amp_step(net, optimizer, scaler, inputs, None, device)), device,
                            args.iters, 1)
        ok = bool(torch.equal(probe.cpu(), torch.full((4,), 3.0))) and all(bool(torch.isfinite(x)) for x in losses)
    finally:
        dist.destroy_process_group()
    if not ok:
        raise GpuCheckFailed(f"one-process {backend} run: all_reduce or a loss is wrong")
    return [[f"DDP, one process, {backend} (fp32 + TF32)", len(inputs), f"{seconds:.3f}",
             f"{len(inputs) / seconds:.1f}", f"{mem.peak_mb:.0f}", f"{float(losses[0]):.5f}", "", "yes"]]


def bench_gpu(args, cfg, device) -> Tuple[List[str], List, List[str]]:
    """The GPU readiness check (``tools/gpu_check.sh``): training steps per precision regime (``GPU_REGIMES``) from
    the same random weights and inputs, ``train_net.py`` with AMP then ``--eval-only``, a one-process NCCL run.
    ``--dry-run``: the same code on the tiny CLIP with small inputs (CPU)."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GpuCheckFailed("no CUDA device visible to PyTorch: run on a GPU machine, or --device cpu --dry-run")
    if device.type != "cuda" and not args.dry_run:
        raise GpuCheckFailed(f"--device {device} is not a GPU: add --dry-run for the quick CPU rehearsal")
    failures = []
    torch.backends.cudnn.benchmark = True  # the recipe's CUDNN_BENCHMARK
    cfg = cfg.clone()
    cfg.MODEL.PIXELCLIP.TEST.AUTOCAST = ""
    torch.manual_seed(args.seed)
    state = {k: v.clone() for k, v in build_model(cfg).state_dict().items()}
    inputs = train_inputs(args.train_batch, args.crop, args.num_masks, device)
    from pixelclip.data.mappers.mask_resolution import MaskResolutionMapper

    reduce = MaskResolutionMapper(lambda d: {**d, "instances": d["instances"][:]}, cfg.MODEL.PIXELCLIP.MASK_RESOLUTION)
    reduced = [reduce(x) for x in inputs]
    rows, reference = [], None
    keys = args.gpu_regimes.split(",")
    if keys[0] != "fp32" or not set(keys) <= set(GPU_REGIMES):
        raise GpuCheckFailed("--gpu-regimes must start with fp32 (the reference) and take from "
                             + ", ".join(GPU_REGIMES))
    for regime in [GPU_REGIMES[k] for k in keys]:  # the dry run too: CPU autocast has float16 and bfloat16
        row, feats, failure = _gpu_regime(args, cfg, device, state, inputs, reduced, regime, reference)
        reference = feats if reference is None else reference
        rows.append(row)
        if failure:
            failures.append(failure)
    _set_tf32(True)
    try:
        rows += _one_process_group_run(args, cfg, device, state, reduced)
    except GpuCheckFailed as e:
        failures.append(str(e))
    with tempfile.TemporaryDirectory() as root:
        try:
            rows += [[what, "", value, "", "", "", "", ""] for what, value in _train_net_runs(args, device, root)]
        except GpuCheckFailed as e:
            failures.append(str(e))
    notes = [f"peak MB: {'CUDA max allocated' if device.type == 'cuda' else 'RSS growth'} over one warm-up and "
             f"{args.iters} timed steps; features vs fp32: |f - f_fp32| / |f_fp32| of the student's dense features "
             "on the same weights and batch (tolerance: TF32 / fp16 2e-2, bf16 8e-2)",
             "release-style: the release's precision (float32 matmuls at TF32, torch.set_float32_matmul_precision"
             "('high')) and masks copied to the device at crop size; the other rows take masks reduced to "
             "MASK_RESOLUTION in the loader (pixelclip/data/mappers/mask_resolution.py)"]
    if failures:
        print(tabulate(rows, headers=GPU_HEADERS, tablefmt="github"))
        raise GpuCheckFailed(f"{len(failures)} check(s) failed: " + "; ".join(failures))
    return GPU_HEADERS, rows, notes


def get_stuff_classes(name: str) -> List[str]:
    from detectron2.data import MetadataCatalog

    return list(MetadataCatalog.get(name).stuff_classes)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="ViT-B-16-quickgelu", help="open_clip architecture (random weights)")
    parser.add_argument("--tasks", default="train,infer,eval",
                        help="any of train,infer,eval,eval-parts,train-profile,train-compare,text,gpu")
    parser.add_argument("--clip-resolution", type=int, default=320)
    parser.add_argument("--crop", type=int, default=640)
    parser.add_argument("--num-masks", type=int, default=64)
    parser.add_argument("--train-batch", type=int, default=None, help="default: 48 on CUDA, 4 on CPU")
    parser.add_argument("--test-batch", type=int, default=4)
    parser.add_argument("--num-classes", type=int, default=150)
    parser.add_argument("--eval-images", type=int, default=16)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights of the eval task")
    parser.add_argument("--eval-repeats", type=int, default=3, help="interleaved repeats of the eval task (medians)")
    parser.add_argument("--regimes", default="random,near-tie,separated",
                        help=f"score regimes of the eval task, from: {', '.join(REGIMES)}")
    parser.add_argument("--workers", type=int, default=0,
                        help="data-loader workers of the eval task (0: in the main process, the steady state; "
                        "worker start-up dominates a short run on 2 cores)")
    parser.add_argument("--autocast", default="", choices=["", "fp16", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--profile-batches", default="2,4", help="batch sizes of train-profile and train-compare")
    parser.add_argument("--baseline", default="68c37d8", help="git revision train-compare measures against")
    parser.add_argument("--compare-repeats", type=int, default=2,
                        help="alternating processes per code and batch size in train-compare")
    parser.add_argument("--compare-iters", type=int, default=1, help="timed steps per train-compare process")
    parser.add_argument("--code-root", default=REPO, help="import pixelclip from this checkout (train-compare)")
    parser.add_argument("--json", action="store_true", help="train: also print the step times as JSON")
    parser.add_argument("--gpu-regimes", default=",".join(GPU_REGIMES),
                        help="gpu: the training regimes, fp32 (the reference) first")
    parser.add_argument("--dry-run", action="store_true",
                        help="gpu: the same code on the tiny CLIP, small inputs, on --device cpu (seconds)")
    args = parser.parse_args()
    if args.dry_run:  # the tiny model and small inputs (tools/gpu_check.sh --device cpu --dry-run)
        args.model, args.clip_resolution, args.crop, args.num_masks, args.iters = "PixelCLIP-Tiny-ViT", 64, 64, 8, 1
        args.train_batch = args.train_batch or 2
    if args.train_batch is None:
        args.train_batch = (16 if "gpu" in args.tasks.split(",") else 48) if args.device.startswith("cuda") else 4
    if args.threads:
        torch.set_num_threads(args.threads)
    setup_logger(name="pixelclip")
    device = torch.device(args.device)
    cfg = make_cfg(args)
    if args.dry_run:
        cfg.MODEL.PIXELCLIP.NUM_PROMPTS, cfg.MODEL.PIXELCLIP.MASK_RESOLUTION = 8, 32
        cfg.MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION = 16
    tasks = {"train": bench_train, "infer": bench_infer, "eval": bench_eval, "eval-parts": bench_eval_parts,
             "train-profile": bench_train_profile,
             "train-compare": bench_train_compare, "text": bench_text, "gpu": bench_gpu}
    title = (f"PixelCLIP {args.model} | CLIP input {args.clip_resolution}² | crop {args.crop}² | K=64 | "
             f"{device} | {torch.get_num_threads()} threads | autocast {args.autocast or 'off'}")
    print(title)
    for task in args.tasks.split(","):
        if task not in tasks:
            raise SystemExit(f"unknown task '{task}' ({', '.join(tasks)})")
        try:
            headers, rows, notes = tasks[task](args, cfg, device)
        except GpuCheckFailed as e:  # one line, exit status 1
            print(f"[gpu_check] {e}", file=sys.stderr)
            raise SystemExit(1)
        print(tabulate(rows, headers=headers, tablefmt="github"))
        for note in notes:
            print(f"  {note}")

if __name__ == "__main__":
    main()
