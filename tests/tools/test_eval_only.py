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


def test_eval_only_on_every_benchmark_family(tmp_path):
    from detectron2.data import MetadataCatalog

    root = tmp_path / "datasets"
    minis = {name: make(root) for name, make in MINIATURE_MAKERS.items()}
    names = list(MINIATURE_MAKERS)
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    out = _run(["tools/train_net.py", "--config-file", str(cfg), "--eval-only", "OUTPUT_DIR", str(tmp_path / "out"),
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
        assert rows[name]["mIoU"] == pytest.approx(expected, abs=1e-6)
        assert rows[name]["images"] == 2  # every miniature has 2 images, all evaluated
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
