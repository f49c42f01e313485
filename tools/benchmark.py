#!/usr/bin/env python
"""Speed and memory of PixelCLIP at the paper's settings, printed as tables (random weights).

    python tools/benchmark.py                          # CPU: train step, inference, --eval-only path
    python tools/benchmark.py --device cuda --train-batch 48
    python tools/benchmark.py --tasks eval --eval-images 16 --test-batch 4

Tasks:
  train  one training step (ViT-B/16, 320² CLIP input, 640² crops, K = 64, 64 masks per image)
  infer  inference on 640×853 images (whole-image mode, 150 classes)
  eval   the end-to-end ``--eval-only`` path (``Trainer.test``: data loader, model, SemSegEvaluator,
         summary) on a generated ADE20K-150-layout folder, next to the dense backbone alone on the
         same images; also the same path with K×H×W logits (TEST.OUTPUT logits) for comparison
  text   the text embeddings of a --num-classes vocabulary with the imagenet_select templates: first
         encoding vs a new model of the same weights reading them from the disk cache (a second run)
Peak memory: CUDA's max allocated memory, or the growth of resident memory (RSS) on CPU.
"""
import argparse
import os
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.evaluation import inference_on_dataset  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import BitMasks, Instances  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from PIL import Image  # noqa: E402
from tabulate import tabulate  # noqa: E402

import pixelclip  # noqa: E402,F401
from pixelclip import get_pixelclip_cfg  # noqa: E402
from pixelclip.data.datasets.ade20k import register_ade20k_150  # noqa: E402
from pixelclip.data.test_mapper import SemanticTestMapper  # noqa: E402
from pixelclip.modeling.postprocess import resize_logits, upsample_argmax  # noqa: E402
from pixelclip.solver import build_optimizer  # noqa: E402
from pixelclip.trainer import Trainer  # noqa: E402


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


def make_cfg(args) -> "CfgNode":  # noqa: F821
    cfg = get_pixelclip_cfg()  # the paper's recipe (configs/Base-PixelCLIP.yaml)
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


def train_inputs(batch: int, crop: int, num_masks: int, device) -> List[Dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        masks = torch.zeros(num_masks, crop, crop, dtype=torch.bool)
        cells = int(np.ceil(np.sqrt(num_masks)))
        step = crop // cells
        for j in range(num_masks):
            y, x = divmod(j, cells)
            masks[j, y * step:(y + 1) * step, x * step:(x + 1) * step] = True
        inst = Instances((crop, crop))
        inst.gt_masks = BitMasks(masks)
        image = torch.randint(0, 256, (3, crop, crop), dtype=torch.uint8, generator=g)
        out.append({"image": image, "image_strong": image, "instances": inst})
    return out


def bench_train(args, cfg, device) -> List:
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    inputs = train_inputs(args.train_batch, args.crop, args.num_masks, device)

    def step():
        loss = model(inputs)["loss_masks"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with PeakMemory(device) as mem:
        seconds = timed(step, device, args.iters)
    return [["train step", args.train_batch, f"{seconds:.3f}", f"{args.train_batch / seconds:.2f}", f"{mem.peak_mb:.0f}"]]


def bench_infer(args, cfg, device) -> List:
    model = build_model(cfg).eval()
    model.set_vocabulary([f"class {i}" for i in range(args.num_classes)])
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 256, (3, 640, 853), dtype=torch.uint8, generator=g), "height": 640,
               "width": 853} for _ in range(args.test_batch)]
    with torch.no_grad(), PeakMemory(device) as mem:
        seconds = timed(lambda: model(inputs), device, args.iters)
    return [["inference", args.test_batch, f"{seconds:.3f}", f"{args.test_batch / seconds:.2f}", f"{mem.peak_mb:.0f}"]]


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


def bench_eval(args, cfg, device) -> List:
    with tempfile.TemporaryDirectory() as root:
        write_ade_layout(root, args.eval_images, 150)
        name = "benchmark_ade20k_150"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        register_ade20k_150(root, name=name)
        cfg = cfg.clone()
        cfg.DATASETS.TEST = (name,)
        cfg.OUTPUT_DIR = os.path.join(root, "output")
        torch.manual_seed(args.seed)  # random weights: how many classes compete per pixel depends on them
        model = build_model(cfg).eval()
        model.set_vocabulary(get_stuff_classes(name))
        # backbone alone, on the same images as the model sees them (mapped, CLIP-normalised, resized)
        mapper = SemanticTestMapper(cfg)
        records = [mapper(d) for d in DatasetCatalog.get(name)]
        batches = [records[i:i + args.test_batch] for i in range(0, len(records), args.test_batch)]
        clip_batches = [model.preprocess.batch([r["image"] for r in b]) for b in batches]
        loader = Trainer.build_test_loader(cfg, name)
        evaluator = Trainer.build_evaluator(cfg, name)

        def backbone_alone():
            for x in clip_batches:
                model.backbone(x)

        def eval_only():  # what tools/train_net.py --eval-only runs
            Trainer.test(cfg, model)

        def logits_path():  # K×H×W logits upsampled in one batched call, arg-max in the evaluator
            inference_on_dataset(model, loader, evaluator)

        runs = {"backbone": [], "eval": [], "logits": []}
        with torch.no_grad():
            model.backbone(clip_batches[0])  # warm-up
            model([dict(r) for r in batches[0]])  # warm-up, fills the vocabulary cache
            # Interleaved repeats, medians: the three paths see the same machine state.
            for _ in range(args.eval_repeats):
                for key, fn in (("backbone", backbone_alone), ("eval", eval_only), ("logits", logits_path)):
                    with PeakMemory(device) as mem:
                        runs[key].append((timed(fn, device, iters=1, warmup=0), mem))
            # Exactness on the same logits: the labels path against K×H×W upsampling + argmax.
            sizes = [(r["height"], r["width"]) for r in batches[0]]
            low_res = model._score(clip_batches[0], model.classifier(model.vocabulary))
            changed, worst_gap = 0, 0.0
            for lg, s in zip(low_res, sizes):
                ours, full = upsample_argmax(lg, s), resize_logits([lg], [s])[0].argmax(0)
                diff = ours != full
                if diff.any():  # how far apart the two labels' scores are, in float64
                    exact = resize_logits([lg.double()], [s])[0]
                    gaps = exact.gather(0, full[None])[0][diff] - exact.gather(0, ours[None])[0][diff]
                    changed, worst_gap = changed + int(diff.sum()), max(worst_gap, float(gaps.abs().max()))
            pixels = sum(h * w for h, w in sizes)
        n = len(records)
        backbone_s, e2e_s, logits_s = (float(np.median([t for t, _ in runs[k]])) for k in ("backbone", "eval", "logits"))
        peak = {k: max(m.peak_mb for _, m in runs[k]) for k in runs}
        spread = ", ".join(f"{100 * b / e:.0f}" for (b, _), (e, _) in zip(runs["backbone"], runs["eval"]))
        return [
            ["dense backbone alone", args.test_batch, f"{backbone_s / n:.3f}", f"{n / backbone_s:.2f}", "-"],
            ["--eval-only end to end", args.test_batch, f"{e2e_s / n:.3f}", f"{n / e2e_s:.2f}", f"{peak['eval']:.0f}"],
            [f"end to end / backbone (median; repeats: {spread} %)", "", "", f"{100 * backbone_s / e2e_s:.0f} %", ""],
            [f"with K×H×W logits (labels changed: {changed} of {pixels} pixels"
             + (f", float ties: score gap ≤ {worst_gap:.0e})" if changed else ")"), args.test_batch,
             f"{logits_s / n:.3f}", f"{n / logits_s:.2f}", f"{peak['logits']:.0f}"],
            ["logits path / backbone", "", "", f"{100 * backbone_s / logits_s:.0f} %", ""],
        ]


def bench_text(args, cfg, device) -> List:
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
    return rows


def get_stuff_classes(name: str) -> List[str]:
    from detectron2.data import MetadataCatalog

    return list(MetadataCatalog.get(name).stuff_classes)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="ViT-B-16-quickgelu", help="open_clip architecture (random weights)")
    parser.add_argument("--tasks", default="train,infer,eval", help="any of train,infer,eval,text")
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
    parser.add_argument("--workers", type=int, default=0,
                        help="data-loader workers of the eval task (0: in the main process, the steady state; "
                        "worker start-up dominates a short run on 2 cores)")
    parser.add_argument("--autocast", default="", choices=["", "fp16", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.train_batch is None:
        args.train_batch = 48 if args.device.startswith("cuda") else 4
    if args.threads:
        torch.set_num_threads(args.threads)
    setup_logger(name="pixelclip")
    device = torch.device(args.device)
    cfg = make_cfg(args)
    rows = []
    tasks = {"train": bench_train, "infer": bench_infer, "eval": bench_eval, "text": bench_text}
    for task in args.tasks.split(","):
        rows += tasks[task](args, cfg, device)
    title = (f"PixelCLIP {args.model} | CLIP input {args.clip_resolution}² | crop {args.crop}² | K=64 | "
             f"{device} | {torch.get_num_threads()} threads | autocast {args.autocast or 'off'}")
    print(title)
    print(tabulate(rows, headers=["what", "batch", "s / batch or image", "images / s", "peak MB"], tablefmt="github"))


if __name__ == "__main__":
    main()
