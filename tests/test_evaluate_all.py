"""pixelclip.evaluate_all: method and benchmark names, clear errors, the table, cell fingerprints."""
import json
import os
import uuid

import pytest
from fixtures.benchmarks import MINIATURE_MAKERS

from pixelclip.evaluate_all import (
    Method,
    build_table,
    cell_config,
    cell_fingerprint,
    cell_path,
    evaluate_dense_mode,
    evaluate_methods,
    format_table,
    parse_benchmarks,
    parse_methods,
    parse_weights,
)
from tests.conftest import make_tiny_cfg


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model_final.pth"
    path.write_bytes(b"not read by these tests")
    return str(path)


def test_weights_names(checkpoint, tmp_path):
    assert parse_weights([checkpoint]) == {"pixelclip": checkpoint}
    assert parse_weights([f"ft={checkpoint}", f"dino={checkpoint}"]) == {"ft": checkpoint, "dino": checkpoint}
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        parse_weights([str(tmp_path / "missing.pth")])
    for bad in (f"clip={checkpoint}", f"sclip={checkpoint}", f"a+b={checkpoint}"):
        with pytest.raises(ValueError, match="--weights"):
            parse_weights([bad])
    with pytest.raises(ValueError, match="unique"):
        parse_weights([checkpoint, f"pixelclip={checkpoint}"])


def test_method_names(checkpoint):
    weights = {"pixelclip": checkpoint, "ft": checkpoint}
    methods = parse_methods(["clip", "vanilla", "maskclip", "sclip", "clearclip", "naclip", "pixelclip",
                             "pixelclip+sclip", "clip+naclip", "ft", "ft+clearclip", "sclip"], weights)
    got = [(m.name, m.weights, m.checkpoint, m.dense_mode) for m in methods]
    assert got == [
        ("clip", "clip", "", "value"), ("vanilla", "clip", "", "vanilla"), ("maskclip", "clip", "", "maskclip"),
        ("sclip", "clip", "", "sclip"), ("clearclip", "clip", "", "clearclip"), ("naclip", "clip", "", "naclip"),
        ("pixelclip", "pixelclip", checkpoint, "value"), ("pixelclip+sclip", "pixelclip", checkpoint, "sclip"),
        ("clip+naclip", "clip", "", "naclip"), ("ft", "ft", checkpoint, "value"),
        ("ft+clearclip", "ft", checkpoint, "clearclip"),
    ]  # the repeated "sclip" is dropped


@pytest.mark.parametrize("name,message", [
    ("pixelclip", "--weights pixelclip=PATH"), ("other+sclip", "--weights other=PATH"),
    ("clip+bogus", "DENSE_MODE 'bogus'"), ("segformer", "unknown method 'segformer'"),
])
def test_method_errors(name, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        parse_methods([name], {})


def test_benchmark_names():
    assert parse_benchmarks(["ade20k_150", "voc_21", "context_459_test_sem_seg", "ade20k_150"]) == [
        ("ade20k_150", "ade20k_150_test_sem_seg"), ("voc_21", "voc_2012_test_background_sem_seg"),
        ("context_459_test_sem_seg", "context_459_test_sem_seg")]
    with pytest.raises(ValueError, match="unknown benchmark 'kitti'"):
        parse_benchmarks(["kitti"])


def _write_cell(out, method, benchmark, miou, fingerprint="fp"):
    path = cell_path(str(out), method, benchmark)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"fingerprint": fingerprint, "metrics": {"mIoU": miou, "pACC": 1.0}}, f)


def test_table_rows_columns_and_mean(tmp_path):
    methods = [Method("clip", "clip", "", "value"), Method("pixelclip+sclip", "pixelclip", "/w.pth", "sclip")]
    benchmarks = [("ade20k_150", "ade20k_150_test_sem_seg"), ("voc_20", "voc_2012_test_sem_seg")]
    _write_cell(tmp_path, "clip", "ade20k_150", 10.0)
    _write_cell(tmp_path, "clip", "voc_20", 70.5)
    _write_cell(tmp_path, "pixelclip+sclip", "voc_20", 80.25)  # its ade20k_150 cell has not run
    table = build_table(make_tiny_cfg(), methods, benchmarks, str(tmp_path))
    assert table["mIoU"] == {"clip": {"ade20k_150": 10.0, "voc_20": 70.5, "mean": 40.25},
                             "pixelclip+sclip": {"ade20k_150": None, "voc_20": 80.25, "mean": None}}
    assert table["methods"]["pixelclip+sclip"]["dense_mode"] == "sclip"
    assert table["protocol"]["clip_resolution"] == [64, 64] and table["protocol"]["templates"] == "single"
    assert format_table(table).splitlines() == [
        "| Method | Weights | DENSE_MODE | ade20k_150 | voc_20 | Mean |",
        "|---|---|---|---:|---:|---:|",
        "| clip | clip | value | 10.00 | 70.50 | 40.25 |",
        "| pixelclip+sclip | pixelclip | sclip | – | 80.25 | – |",
    ]
    # with the current fingerprints, a cell computed under another config is left out
    current = {("clip", "ade20k_150"): "fp", ("clip", "voc_20"): "other config",
               ("pixelclip+sclip", "ade20k_150"): "fp", ("pixelclip+sclip", "voc_20"): "fp"}
    table = build_table(make_tiny_cfg(), methods, benchmarks, str(tmp_path), current)
    assert table["mIoU"]["clip"] == {"ade20k_150": 10.0, "voc_20": None, "mean": None}
    assert table["mIoU"]["pixelclip+sclip"]["voc_20"] == 80.25


def test_fingerprint_follows_config_and_checkpoint(checkpoint, tmp_path):
    cfg = make_tiny_cfg()
    method = Method("pixelclip", "pixelclip", checkpoint, "value")
    base = cell_fingerprint(cell_config(cfg, method, "voc_2012_test_sem_seg", str(tmp_path / "a")))
    assert base == cell_fingerprint(cell_config(cfg, method, "voc_2012_test_sem_seg", str(tmp_path / "b")))
    assert base != cell_fingerprint(cell_config(cfg, Method("x", "pixelclip", checkpoint, "sclip"),
                                                "voc_2012_test_sem_seg", str(tmp_path / "a")))
    other = cfg.clone()
    other.MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION = 8
    assert base != cell_fingerprint(cell_config(other, method, "voc_2012_test_sem_seg", str(tmp_path / "a")))
    os.utime(checkpoint, ns=(1, 1))  # a re-written checkpoint: the cell is stale
    assert base != cell_fingerprint(cell_config(cfg, method, "voc_2012_test_sem_seg", str(tmp_path / "a")))


def test_library_calls_for_scripts_agree(tmp_path):
    """evaluate_dense_mode (one model, no files) and evaluate_methods (the resumable grid) give the
    same mIoU for the same config and mode: both build the model as --eval-only does (seeded)."""
    name = MINIATURE_MAKERS["voc_2012_test_sem_seg"](tmp_path / "datasets").register("test_voc20_" + uuid.uuid4().hex)
    cfg = make_tiny_cfg()
    cfg.SEED = 0
    cfg.DATASETS.TEST = (name,)
    cfg.DATALOADER.NUM_WORKERS = 0
    single = evaluate_dense_mode(cfg, "sclip", output_dir=str(tmp_path / "single"))
    rows = evaluate_methods(cfg, ["sclip", "clip+naclip"], str(tmp_path / "grid"))
    assert list(rows) == ["sclip", "clip+naclip"]
    assert rows["sclip"][name] == single[name] is not None
    assert rows["clip+naclip"]["mean"] == rows["clip+naclip"][name]
    cell = json.loads(open(cell_path(str(tmp_path / "grid"), "clip+naclip", name)).read())
    assert cell["dense_mode"] == "naclip" and cell["metrics"]["mIoU"] == rows["clip+naclip"][name]


def test_protocol_names_the_slide_overlap_only_in_slide_mode():
    from pixelclip.evaluate_all import protocol_of

    whole = protocol_of(make_tiny_cfg())
    assert whole["test_mode"] == "whole" and whole["slide_overlap"] is None
    slide = protocol_of(make_tiny_cfg(**{"MODEL.PIXELCLIP.TEST.MODE": "slide",
                                         "MODEL.PIXELCLIP.TEST.SLIDE_OVERLAP": 0.25}))
    assert slide["test_mode"] == "slide" and slide["slide_overlap"] == 0.25


def test_a_cell_of_another_config_is_recomputed_and_a_current_one_reused(tmp_path, monkeypatch):
    """The evaluation itself is stubbed: only which cells run is checked."""
    import pixelclip.evaluate_all as ea
    from detectron2.data import DatasetCatalog

    name = f"test_ea_stale_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: [{"file_name": "a.jpg"}, {"file_name": "b.jpg"}])
    runs = []
    monkeypatch.setattr(ea, "build_model_for", lambda cell_cfg: "model")
    monkeypatch.setattr(ea, "evaluate_cell",
                        lambda cell_cfg, model: runs.append(cell_cfg.DATASETS.TEST) or {"mIoU": 42.0})
    methods, benchmarks = [Method("clip", "clip", "", "value")], [("mini", name)]
    _write_cell(tmp_path, "clip", "mini", 1.0, fingerprint="from another config")
    table = ea.evaluate_all(make_tiny_cfg(), methods, benchmarks, str(tmp_path))
    assert runs == [(name,)] and table["mIoU"]["clip"] == {"mini": 42.0, "mean": 42.0}
    again = ea.evaluate_all(make_tiny_cfg(), methods, benchmarks, str(tmp_path))
    assert runs == [(name,)] and again["mIoU"] == table["mIoU"]  # the cell written by the first call is reused
