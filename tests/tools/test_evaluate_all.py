"""`tools/evaluate_all.py` end to end on benchmark miniatures: the table holds the per-cell results,
a cell equals a direct `train_net.py --eval-only` run of it, and a second call reuses finished cells."""
import json
import os
from pathlib import Path

import torch
from detectron2.modeling import build_model

from fixtures.benchmarks import MINIATURE_MAKERS
from pixelclip.clip.build import build_clip_model
from tests.conftest import make_tiny_cfg
from tests.tools.run_tool import REPO, run_tool

DATASETS = {"voc_20": "voc_2012_test_sem_seg", "context_59": "context_59_test_sem_seg"}


def _config(path: Path, clip_weights: Path) -> Path:
    path.write_text(f"""_BASE_: "{REPO / 'configs' / 'Base-PixelCLIP.yaml'}"
MODEL:
  DEVICE: cpu
  PIXELCLIP:
    CLIP_MODEL_NAME: PixelCLIP-Tiny-ViT
    CLIP_PRETRAINED: "{clip_weights}"
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
""")
    return path


def _weights(tmp_path: Path):
    """A tiny random CLIP file and a PixelCLIP checkpoint whose image encoder's attention moved."""
    torch.manual_seed(2)
    clip_file = tmp_path / "tiny_clip.pt"
    torch.save(build_clip_model("PixelCLIP-Tiny-ViT", "")[0].state_dict(), clip_file)
    model = build_model(make_tiny_cfg(**{"MODEL.PIXELCLIP.CLIP_PRETRAINED": str(clip_file)}))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.backbone.clip_model.visual.named_parameters():
            if "attn" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    checkpoint = tmp_path / "pixelclip_tiny.pth"
    torch.save({"model": model.state_dict()}, checkpoint)
    return clip_file, checkpoint


def _cells(out: Path):
    return {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "cells").rglob("*.json")}


def test_evaluate_all_table_equals_cells_and_eval_only_and_resumes(tmp_path):
    root = tmp_path / "datasets"
    for dataset in DATASETS.values():
        MINIATURE_MAKERS[dataset](root)
    clip_file, checkpoint = _weights(tmp_path)
    cfg = _config(tmp_path / "tiny.yaml", clip_file)
    out = tmp_path / "table"
    args = ["--config-file", str(cfg), "--benchmarks", ",".join(DATASETS), "--weights", f"pixelclip={checkpoint}",
            "--output", str(out)]

    first = run_tool("tools/evaluate_all.py", args + ["--methods", "clip,naclip,pixelclip+sclip"], root)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "0 cells finished earlier, 6 to run" in first.stdout + first.stderr
    table = json.loads((out / "table.json").read_text())
    assert list(table["mIoU"]) == ["clip", "naclip", "pixelclip+sclip"]
    assert table["benchmarks"] == DATASETS
    assert table["methods"]["pixelclip+sclip"] == {"name": "pixelclip+sclip", "weights": "pixelclip",
                                                    "checkpoint": str(checkpoint), "dense_mode": "sclip"}
    md = (out / "table.md").read_text().splitlines()
    values = []
    for row, (method, cells) in zip(md[2:], table["mIoU"].items()):
        per_cell = []
        for column, dataset in DATASETS.items():
            cell = json.loads((out / "cells" / method / f"{column}.json").read_text())
            assert cell["dataset"] == dataset and cell["dense_mode"] == table["methods"][method]["dense_mode"]
            assert cells[column] == cell["metrics"]["mIoU"]
            per_cell.append(cell["metrics"]["mIoU"])
        assert cells["mean"] == sum(per_cell) / len(per_cell)
        spec = table["methods"][method]
        assert row == f"| {method} | {spec['weights']} | {spec['dense_mode']} | " \
                      + " | ".join(f"{v:.2f}" for v in per_cell + [cells["mean"]]) + " |"
        values += per_cell
    assert sum(v > 0 for v in values) >= 2 and len(set(values)) >= 3  # the comparisons below are not all 0 = 0

    # a cell is what `train_net.py --eval-only` gives for the same weights, DENSE_MODE and dataset
    test_sets = "(" + ",".join(f'"{d}"' for d in DATASETS.values()) + ",)"
    direct = run_tool("tools/train_net.py", ["--config-file", str(cfg), "--eval-only", "MODEL.WEIGHTS", str(checkpoint),
                                             "MODEL.PIXELCLIP.DENSE_MODE", "sclip", "DATASETS.TEST", test_sets,
                                             "OUTPUT_DIR", str(tmp_path / "direct")], root)
    assert direct.returncode == 0, direct.stderr[-4000:]
    summary = json.loads((tmp_path / "direct" / "summary.json").read_text())
    for column, dataset in DATASETS.items():
        cell = json.loads((out / "cells" / "pixelclip+sclip" / f"{column}.json").read_text())
        for metric in ("mIoU", "fwIoU", "mACC", "pACC"):
            assert summary[dataset][metric] == cell["metrics"][metric], (dataset, metric)

    # a second call with one more method computes only that method's cells
    before = _cells(out)
    second = run_tool("tools/evaluate_all.py", args + ["--methods", "clip,naclip,pixelclip+sclip,clearclip"], root)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "6 cells finished earlier, 2 to run" in second.stdout + second.stderr
    after = _cells(out)
    assert {k: v for k, v in after.items() if k in before} == before  # same bytes, same modification time
    new_cells = sorted(set(after) - set(before))
    assert new_cells == [Path("cells/clearclip/context_59.json"), Path("cells/clearclip/voc_20.json")]
    table2 = json.loads((out / "table.json").read_text())
    assert {k: v for k, v in table2["mIoU"].items() if k != "clearclip"} == table["mIoU"]
    assert os.path.isfile(out / "runs" / "clearclip" / "voc_20" / "summary.json")
