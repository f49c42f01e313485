"""datasets/prepare_*.py on miniature official downloads: exact label outputs, resumability,
clear layout errors, and the prepared folders loading through the registrations."""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from fixtures.benchmarks import (
    make_ade20k_150_raw,
    make_ade20k_847_raw,
    make_cityscapes_raw,
    make_coco_stuff_raw,
    make_pascal_context_raw,
    make_voc_raw,
)
from PIL import Image

from pixelclip.data.datasets.ade20k import register_ade20k_150, register_ade20k_847
from pixelclip.data.datasets.cityscapes import register_cityscapes_19
from pixelclip.data.datasets.coco_stuff import register_coco_stuff_171
from pixelclip.data.datasets.pascal_context import (
    register_context_59,
    register_context_60,
    register_context_459,
)
from pixelclip.data.datasets.pascal_voc import register_voc_20, register_voc_21

REPO = Path(__file__).resolve().parents[3]

# script -> (raw-layout maker, registration functions of the datasets it prepares)
CASES = {
    "prepare_ade20k_150.py": (make_ade20k_150_raw, [register_ade20k_150]),
    "prepare_ade20k_847.py": (make_ade20k_847_raw, [register_ade20k_847]),
    "prepare_pascal_context.py": (
        make_pascal_context_raw, [register_context_59, register_context_60, register_context_459]),
    "prepare_coco_stuff.py": (make_coco_stuff_raw, [register_coco_stuff_171]),
    "prepare_voc.py": (make_voc_raw, [register_voc_20, register_voc_21]),
    "prepare_cityscapes.py": (make_cityscapes_raw, [register_cityscapes_19]),
}


def _prepare(script: str, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DETECTRON2_DATASETS"}
    return subprocess.run(
        [sys.executable, str(REPO / "datasets" / script), "--root", str(root), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


def _expected_output(rel: str, expected: np.ndarray) -> np.ndarray:
    if expected.shape == (520, 600):  # the ADE-847 recipe resizes short sides above 512
        return cv2.resize(expected.astype(np.uint16), (591, 512), interpolation=cv2.INTER_NEAREST)
    return expected


@pytest.mark.parametrize("script", list(CASES))
def test_prepare_script(script, tmp_path):
    make_raw, registers = CASES[script]
    expected = make_raw(tmp_path)
    result = _prepare(script, tmp_path)
    assert result.returncode == 0, result.stderr
    for rel, labels in expected.items():
        out = np.array(Image.open(tmp_path / rel))
        assert out.dtype == (np.uint16 if rel.endswith(".tif") else np.uint8), rel
        np.testing.assert_array_equal(out, _expected_output(rel, labels), err_msg=rel)
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary files left

    # the prepared folders load through the registrations, one record per prepared label file
    for register in registers:
        name = f"test_prep_{uuid.uuid4().hex[:8]}"
        register(str(tmp_path), name=name)
        dicts = DatasetCatalog.get("pixelclip_" + name)  # every registration also has the prefixed name
        labels = {str(tmp_path / rel) for rel in expected}
        assert {d["sem_seg_file_name"] for d in dicts} <= labels and len(dicts) >= 2
        for d in dicts:
            assert Image.open(d["file_name"]).size == (d["width"], d["height"])
            assert Image.open(d["sem_seg_file_name"]).size == (d["width"], d["height"])

    # resumable: a second run skips everything; a deleted output is made again
    outputs = sorted(expected)
    mtimes = {rel: (tmp_path / rel).stat().st_mtime_ns for rel in outputs}
    again = _prepare(script, tmp_path)
    assert again.returncode == 0 and "wrote 0" in again.stderr, again.stderr
    assert {rel: (tmp_path / rel).stat().st_mtime_ns for rel in outputs} == mtimes
    (tmp_path / outputs[0]).unlink()
    third = _prepare(script, tmp_path)
    assert third.returncode == 0 and "wrote 1" in third.stderr, third.stderr
    assert (tmp_path / outputs[0]).is_file()


@pytest.mark.parametrize("script", list(CASES))
def test_prepare_script_reports_a_wrong_layout(script, tmp_path):
    result = _prepare(script, tmp_path / "empty")
    assert result.returncode == 2
    assert result.stderr.startswith("error: expected") and "See datasets/README.md" in result.stderr
    assert "Traceback" not in result.stderr


def test_prepare_reports_a_corrupt_input_file(tmp_path):
    make_voc_raw(tmp_path)
    bad = tmp_path / "VOCdevkit/VOC2012/SegmentationClass/2007_000001.png"  # in val.txt
    bad.write_bytes(b"garbage")
    result = _prepare("prepare_voc.py", tmp_path)
    assert result.returncode == 2 and bad.name in result.stderr and "Traceback" not in result.stderr


def test_pascal_context_with_workers_and_selected_tasks(tmp_path):
    expected = make_pascal_context_raw(tmp_path)
    result = _prepare("prepare_pascal_context.py", tmp_path, "--tasks", "459", "--workers", "2")
    assert result.returncode == 0, result.stderr
    made = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("annotations_detectron2/*/*")}
    assert made == {rel for rel in expected if "pc459" in rel}
