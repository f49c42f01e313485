"""tools/generate_masks.py as a user runs it: killed mid-run and restarted, shards in parallel
processes, clear errors for missing weights."""
import importlib.util
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch

from pixelclip.data.mask_io import TEMP_MARKER, read_mask_file
from pixelclip.errors import PixelCLIPError
from tests.masks.tiny_models import write_images

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "generate_masks.py"


@pytest.fixture(scope="module")
def dino_weights(tmp_path_factory):
    """A random vit_tiny_patch16_224 saved in timm's key layout (a stand-in for real DINO weights)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "vit_tiny_random.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).state_dict(), path)
    return path


def _command(images, masks, weights, *extra):
    return [sys.executable, str(TOOL), "--input", str(images), "--output", str(masks), "--method", "dino",
            "--dino-weights", str(weights), "--dino-model", "vit_tiny_patch16_224", "--clusters", "4",
            "--device", "cpu", "--no-progress", *extra]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def _mask_files(masks: Path):
    return [p for p in masks.rglob("*.json") if not p.name.startswith("generate_masks_summary")]


def _assert_complete(names, masks: Path):
    for name in names:
        record = read_mask_file(masks / (os.path.splitext(name)[0] + ".json"), check_rle=True)
        assert record["image"]["file_name"] == name and record["annotations"]
    assert len(_mask_files(masks)) == len(names)
    assert not [p for p in masks.rglob("*") if TEMP_MARKER in p.name]


def test_killed_run_resumes_and_every_image_ends_with_one_valid_file(tmp_path, dino_weights):
    names = [f"part{i % 2}/img_{i:02d}.png" for i in range(16)]
    write_images(tmp_path / "images", names)
    masks = tmp_path / "masks"
    cmd = _command(tmp_path / "images", masks, dino_weights, "--dino-input-size", "224")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (masks.exists() and _mask_files(masks)):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    written = len(_mask_files(masks)) if masks.exists() else 0
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert 1 <= written < len(names), f"not interrupted mid-run ({written} of {len(names)} written)"

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{written} already done" in rerun.stdout + rerun.stderr
    _assert_complete(names, masks)


def test_shards_in_parallel_processes_cover_all_images_once(tmp_path, dino_weights):
    names = [f"img_{i:02d}.png" for i in range(8)]
    write_images(tmp_path / "images", names)
    masks = tmp_path / "masks"
    procs = [subprocess.Popen(_command(tmp_path / "images", masks, dino_weights, "--dino-input-size", "64",
                                       "--shard", str(i), "--num-shards", "2"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
    summaries = [json.loads((masks / f"generate_masks_summary.shard{i}of2.json").read_text()) for i in range(2)]
    assert sum(s["processed"] for s in summaries) == len(names)
    assert all(s["method"] == "dino" and s["options"]["clusters"] == 4 for s in summaries)
    _assert_complete(names, masks)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "dino", "--dino-weights", "/nonexistent/dino.pth"],
         "DINO weights file '/nonexistent/dino.pth' not found"),
        (["--method", "sam", "--sam-checkpoint", "/nonexistent/sam.pth", "--model-type", "vit_b"],
         "SAM checkpoint '/nonexistent/sam.pth' not found"),
        (["--method", "dino", "--dino-weights", "x", "--shard", "2", "--num-shards", "2"], "--shard must be in"),
        (["--method", "dino"], "--method dino needs --dino-weights: a local weights file"),
        (["--method", "sam", "--dino-weights", "x"], "--method sam needs --sam-checkpoint: a local weights file"),
    ],
)
def test_clear_errors(tmp_path, args, message):
    write_images(tmp_path / "images", ["a.png"])
    with pytest.raises(PixelCLIPError) as error:  # run_tool prints it as one line, exit status 1
        _tool().main(["--input", str(tmp_path / "images"), "--output", str(tmp_path / "masks"), *args])
    assert message in str(error.value) and "\n" not in str(error.value)


def _tool():
    spec = importlib.util.spec_from_file_location("generate_masks_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_a_folder_without_images_is_said_before_any_model_is_built(tmp_path, monkeypatch):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    (tmp_path / "images" / "sub" / "notes.txt").write_text("no image here")
    tool = _tool()
    monkeypatch.setattr(tool, "build_masker", lambda args: pytest.fail("a model was built"))
    with pytest.raises(PixelCLIPError, match=rf"no images under {tmp_path / 'images'} \(searched recursively for "
                       r"\.jpg, \.jpeg, \.png"):
        tool.main(["--input", str(tmp_path / "images"), "--output", str(tmp_path / "masks"), "--method", "dino",
                   "--dino-weights", "x"])
    assert not (tmp_path / "masks").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--clusters", "0", "must be at least 1, got 0"),
    ("--kmeans-iters", "-1", "must be at least 1, got -1"),
    ("--kmeans-tol", "-0.1", "must be at least 0, got -0.1"),
    ("--dino-input-size", "-16", "must be at least 0, got -16"),
    ("--points-per-side", "0", "must be at least 1, got 0"),
    ("--pred-iou-thresh", "1.5", "must be in [0, 1], got 1.5"),
    ("--box-nms-thresh", "-0.2", "must be in [0, 1], got -0.2"),
    ("--crop-n-layers", "-1", "must be at least 0, got -1"),
    ("--clusters", "many", "expected an integer, got 'many'"),
])
def test_out_of_range_numbers_are_usage_errors(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as stop:
        _tool().main(["--input", str(tmp_path), "--output", str(tmp_path / "masks"), "--method", "dino",
                      option, value])
    assert stop.value.code == 2
    assert f"error: argument {option}: {message}" in capsys.readouterr().err


def test_defaults_are_segment_anything_and_the_release():
    """SAM knobs default to SamAutomaticMaskGenerator's own defaults; DINO to the release's 16 clusters
    and fast_pytorch_kmeans' 100 steps and tolerance 1e-4."""
    from segment_anything import SamAutomaticMaskGenerator

    tool = _tool()
    parameters = inspect.signature(SamAutomaticMaskGenerator.__init__).parameters
    args = tool.get_parser().parse_args(["--input", "i", "--output", "o", "--method", "sam"])
    for name in tool.SAM_KNOBS:
        assert getattr(args, name) == parameters[name].default, name
    args = tool.get_parser().parse_args(["--input", "i", "--output", "o", "--method", "dino"])
    assert (args.clusters, args.kmeans_iters, args.kmeans_tol) == (16, 100, 1e-4)


def test_every_option_reaches_the_masker(monkeypatch):
    from tests.masks.tiny_models import tiny_sam

    tool = _tool()
    common = ["--input", "i", "--output", "o", "--device", "cpu"]
    monkeypatch.setattr(tool, "build_sam", lambda model_type, checkpoint, device="cpu": tiny_sam())
    values = {"points_per_side": 3, "points_per_batch": 5, "pred_iou_thresh": 0.25, "stability_score_thresh": 0.5,
              "stability_score_offset": 2.0, "box_nms_thresh": 0.3, "crop_n_layers": 1, "crop_nms_thresh": 0.4,
              "crop_overlap_ratio": 0.2, "crop_n_points_downscale_factor": 2, "min_mask_region_area": 9}
    assert set(values) == set(tool.SAM_KNOBS)
    flags = [s for name, v in values.items() for s in ("--" + name.replace("_", "-"), str(v))]
    generator = tool.build_masker(tool.get_parser().parse_args(common + ["--method", "sam"] + flags)).generator
    for name, value in values.items():
        if name != "points_per_side":
            assert getattr(generator, name) == value, name
    assert len(generator.point_grids[0]) == 3 * 3 and generator.output_mode == "coco_rle"

    args = tool.get_parser().parse_args(common + [
        "--method", "dino", "--dino-weights", "random", "--dino-model", "vit_tiny_patch16_224", "--clusters", "5",
        "--kmeans-iters", "7", "--kmeans-tol", "0.5", "--dino-input-size", "32", "--kmeans-seed", "3"])
    masker = tool.build_masker(args).fn.__self__
    assert (masker.num_clusters, masker.kmeans_iters, masker.kmeans_tol) == (5, 7, 0.5)
    assert masker.input_size == 32 and masker.seed == 3 and not masker.flip_channels
