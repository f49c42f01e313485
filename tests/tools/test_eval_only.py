"""`tools/train_net.py --eval-only` on generated miniatures of every benchmark family, and the demo."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.benchmarks import MINIATURE_MAKERS, miou_of_predictions
from tests.tools.run_tool import REPO, run_tool


def _run(args, datasets_root, timeout=600):
    return run_tool(args[0], args[1:], datasets_root, timeout=timeout)


def _tiny_config(path: Path, extra: str = "") -> Path:
    path.write_text(f"""_BASE_: "{REPO / 'configs' / 'Base-PixelCLIP.yaml'}"
MODEL:
  DEVICE: cpu
  PIXELCLIP:
    CLIP_MODEL_NAME: PixelCLIP-Tiny-ViT
    CLIP_PRETRAINED: ""
    CLIP_RESOLUTION: (64, 64)
    NUM_PROMPTS: 8
    TEST:
      TEMPLATES: single
      FEATURE_RESOLUTION: 16
INPUT:
  MIN_SIZE_TEST: 64
  MAX_SIZE_TEST: 256
TEST:
  IMS_PER_BATCH: 2
DATALOADER:
  NUM_WORKERS: 0
SEED: 0
{extra}""")
    return path


def _decoded(predictions, file_name, shape, dataset_to_contiguous):
    """The H×W contiguous labels of one image from sem_seg_predictions.json (pycocotools; -1 where no RLE)."""
    from pycocotools import mask as mask_util

    out = np.full(shape, -1)
    for p in predictions:
        if p["file_name"] == file_name:
            cls = dataset_to_contiguous[p["category_id"]] if dataset_to_contiguous else p["category_id"]
            out[mask_util.decode(p["segmentation"]).astype(bool)] = cls
    return out


def _labels_the_model_half_gets_right(minis, cfg_path: Path, weights: Path):
    """Save a tiny random model as ``weights`` and rewrite each miniature's ground truth from its own
    predictions (same config, same test mapper): the top half of each image labelled as the model predicts
    it, the bottom half as the next class, the ignored pixels kept. Every benchmark then scores strictly
    between 0 and 100 (a random model scores 0 on random labels, so an mIoU check could not fail).
    -> {benchmark: {image file: H×W predicted labels}}."""
    import torch
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model

    from fixtures.benchmarks import _write_label
    from pixelclip.data.registry import build_test_mapper
    from pixelclip.modeling.postprocess import few_threads
    from pixelclip.utils.cli import load_config

    cfg = load_config(str(cfg_path))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.save({"model": model.state_dict()}, weights)
    predictions = {}
    # tiny ops: one thread is faster (much so on a busy machine)
    with few_threads(torch.device("cpu")), torch.no_grad():
        for name, mini in minis.items():
            model.set_vocabulary(MetadataCatalog.get(name).stuff_classes)
            mapper = build_test_mapper(cfg, name)
            predictions[name] = {}
            for i, (image, label_file, gt) in enumerate(zip(mini.image_files, mini.label_files, mini.labels)):
                out = model([mapper({"file_name": str(image)})])[0]
                pred = (out["sem_seg_labels"] if "sem_seg_labels" in out else out["sem_seg"].argmax(0)).numpy()
                assert pred.shape == gt.shape
                new = pred.copy()
                new[gt.shape[0] // 2:] = (pred[gt.shape[0] // 2:] + 1) % mini.num_classes
                new[gt == mini.ignore_label] = mini.ignore_label
                _write_label(label_file, new)
                mini.labels[i] = new
                predictions[name][str(image)] = pred
    return predictions


def test_eval_only_on_every_benchmark_family(tmp_path, monkeypatch):
    """``--eval-only`` on all nine families in one run, with weights whose predictions score between 0 and
    100 (ground truth made from them, half right): each summary mIoU equals the one computed from scratch
    from the written predictions (pycocotools-decoded, mapped back from the dataset's ids) and the labels.
    The run reads the vocabularies' text embeddings from the cache this process wrote (same weights), so
    the nine vocabularies are encoded once."""
    from detectron2.data import MetadataCatalog

    monkeypatch.setenv("PIXELCLIP_TEXT_CACHE", str(tmp_path / "text_cache"))  # here and in the run
    root = tmp_path / "datasets"
    minis = {name: make(root) for name, make in MINIATURE_MAKERS.items()}
    names = list(MINIATURE_MAKERS)
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    ours = _labels_the_model_half_gets_right(minis, cfg, tmp_path / "tiny.pth")
    out = _run(["tools/train_net.py", "--config-file", str(cfg), "--eval-only", "OUTPUT_DIR", str(tmp_path / "out"),
                "MODEL.WEIGHTS", str(tmp_path / "tiny.pth"),
                "DATASETS.TEST", "(" + ",".join(f'"{n}"' for n in names) + ",)"], root)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = summary.get("datasets", summary)
    for name in names:
        assert name in rows, name
        predictions = json.loads((tmp_path / "out" / "inference" / name / "sem_seg_predictions.json").read_text())
        mapping = MetadataCatalog.get(name).get("stuff_dataset_id_to_contiguous_id", None)
        labels = {str(f): gt for f, gt in zip(minis[name].image_files, minis[name].labels)}
        expected = miou_of_predictions(predictions, labels, minis[name].num_classes, minis[name].ignore_label, mapping)
        assert 0 < expected < 100, (name, expected)
        assert rows[name]["mIoU"] == pytest.approx(expected, abs=1e-6)
        assert rows[name]["images"] == 2  # every miniature has 2 images, all evaluated
        # the run predicted what the saved weights predict in this process (up to float ties)
        same = sum(np.sum(_decoded(predictions, f, gt.shape, mapping) == ours[name][f]) for f, gt in labels.items())
        assert same >= 0.99 * sum(gt.size for gt in labels.values()), name
    table = (tmp_path / "out" / "summary.md").read_text()
    assert all(name in table for name in names) and "mIoU" in table


def test_demo_writes_overlay_with_legend_and_labels(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(images / "street.jpg")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    out = _run(["tools/demo.py", "--config-file", str(cfg), "--input", str(images), "--output", str(tmp_path / "out"),
                "--vocabulary", "sky,road,tree"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "broken.jpg" in out.stdout + out.stderr  # reported and skipped
    labels = np.array(Image.open(tmp_path / "out" / "street_labels.png"))
    assert labels.shape == (48, 64) and labels.max() < 3
    overlay = Image.open(tmp_path / "out" / "street_overlay.png")
    assert overlay.size[0] > 64
