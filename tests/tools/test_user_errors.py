"""Common mistakes through the real command-line tools: one line "[tool] <what> — <what to do>",
exit status 1, nothing partial left behind; --debug shows the traceback.

Mistakes caught before the run starts are run in this process (runpy, the tool's own __main__);
those that need a model, a training loop or worker processes run as subprocesses."""
import contextlib
import io
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from PIL import Image

from pixelclip.data.datasets.ade20k import register_ade20k_150
from pixelclip.data.datasets.pascal_voc import register_voc_20
from pixelclip.data.datasets.sa1b import register_sa1b
from pixelclip.errors import ConfigError
from tests.conftest import make_tiny_cfg
from tests.test_checkpoint import _dino_vits_like_state_dict
from tests.tools.run_tool import REPO, run_tool
from tests.tools.test_eval_only import _tiny_config
from tests.tools.test_train_net import make_sa1b_folder, write_tiny_config


def _in_process(script: str, args, monkeypatch):
    """Run ``python <script> <args>`` in this process; returns (exit status, stdout, stderr)."""
    monkeypatch.setenv("PIXELCLIP_DEBUG", "0")
    monkeypatch.setattr(sys, "argv", [str(REPO / script), *map(str, args)])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / script), run_name="__main__")
    return exit_info.value.code, out.getvalue(), err.getvalue()


def _one_line(stderr: str, tool: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(f"[{tool}]")]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def _unique(prefix: str) -> str:
    return f"test_{prefix}_{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------ caught before the run starts
def test_a_config_key_that_does_not_exist_names_the_nearest_ones(tmp_path, monkeypatch):
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    code, _, err = _in_process("tools/train_net.py", ["--config-file", cfg, "--eval-only", "OUTPUT_DIR", tmp_path / "out",
                                                      "MODEL.PIXELCLIP.NUM_PROMPT", "16"], monkeypatch)
    assert code == 1
    assert _one_line(err, "train_net") == (
        "[train_net] command line: config key MODEL.PIXELCLIP.NUM_PROMPT does not exist — did you mean "
        "MODEL.PIXELCLIP.NUM_PROMPTS or MODEL.PIXELCLIP.LEARN_PROMPTS?")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text(cfg.read_text().replace("  PIXELCLIP:\n", "  PIXELCLIP:\n    MOMENTUMM: 0.9\n"))
    code, _, err = _in_process("tools/train_net.py", ["--config-file", bad_yaml, "--eval-only"], monkeypatch)
    assert code == 1 and _one_line(err, "train_net") == (
        f"[train_net] {bad_yaml}: config key MODEL.PIXELCLIP.MOMENTUMM does not exist — did you mean "
        "MODEL.PIXELCLIP.MOMENTUM or MODEL.PIXELCLIP.USE_MOMENTUM?")
    assert not (tmp_path / "out").exists()
    code, _, err = _in_process("tools/train_net.py", ["--config-file", cfg, "--eval-only", "MODEL.NUM_PROMPTS", "16"],
                               monkeypatch)
    assert code == 1 and _one_line(err, "train_net").endswith("did you mean MODEL.PIXELCLIP.NUM_PROMPTS?")


def test_num_prompts_zero_or_negative_is_said_before_anything_runs(tmp_path, monkeypatch):
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    code, stdout, err = _in_process("tools/train_net.py", ["--config-file", cfg, "--eval-only", "OUTPUT_DIR", out,
                                                           "MODEL.PIXELCLIP.NUM_PROMPTS", "0"], monkeypatch)
    assert code == 1 and _one_line(err, "train_net") == (
        "[train_net] command line: MODEL.PIXELCLIP.NUM_PROMPTS is 0, but K, the number of learnable class prompts "
        "(global semantic clusters), must be at least 1 — give a positive number, e.g. "
        "MODEL.PIXELCLIP.NUM_PROMPTS 64 (the paper's)")
    assert not out.exists() and "Running with full config" not in stdout + err
    in_file = tmp_path / "negative.yaml"
    in_file.write_text(cfg.read_text().replace("NUM_PROMPTS: 8", "NUM_PROMPTS: -2"))
    code, _, err = _in_process("tools/train_net.py", ["--config-file", in_file, "--eval-only"], monkeypatch)
    assert code == 1 and _one_line(err, "train_net").startswith(
        f"[train_net] {in_file}: MODEL.PIXELCLIP.NUM_PROMPTS is -2, but K")


def test_a_projects_config_given_to_the_core_tool_names_the_projects_train_net(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = "projects/MaskClassification/configs/gt_dense_vitb.yaml"
    code, _, err = _in_process("tools/train_net.py", ["--config-file", config, "--eval-only", "OUTPUT_DIR", tmp_path / "out"],
                               monkeypatch)
    assert code == 1 and _one_line(err, "train_net") == (
        f"[train_net] {config}: config key MODEL.MASK_CLASSIFIER does not exist — this is a project's config: "
        "run it with projects/MaskClassification/train_net.py, which adds the project's keys")


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    monkeypatch.setattr(sys, "argv", [str(REPO / "tools/train_net.py"), "--config-file", str(cfg), "--debug",
                                      "MODEL.PIXELCLIP.NUM_PROMPT", "16"])
    monkeypatch.setenv("PIXELCLIP_DEBUG", "0")
    with pytest.raises(ConfigError, match="NUM_PROMPT does not exist"):
        runpy.run_path(str(REPO / "tools/train_net.py"), run_name="__main__")


def test_a_missing_model_weights_file_is_said_before_the_config_dump(tmp_path, monkeypatch):
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    code, stdout, err = _in_process("tools/train_net.py", ["--config-file", cfg, "--eval-only", "OUTPUT_DIR", out,
                                                           "MODEL.WEIGHTS", tmp_path / "model_final.pth"], monkeypatch)
    assert code == 1 and _one_line(err, "train_net") == (
        f"[train_net] MODEL.WEIGHTS file not found: {tmp_path / 'model_final.pth'} — give the path of a PixelCLIP "
        "checkpoint (e.g. output/pixelclip_vitb/model_final.pth), or MODEL.WEIGHTS \"\" to start from the CLIP "
        "weights alone")
    assert "Running with full config" not in stdout + err and os.listdir(out) == []  # no config dump, no log


def test_an_output_folder_that_cannot_be_written(tmp_path, monkeypatch):
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    (tmp_path / "a_file").write_text("")
    code, _, err = _in_process("tools/train_net.py", ["--config-file", cfg, "--eval-only", "OUTPUT_DIR",
                                                      tmp_path / "a_file" / "out"], monkeypatch)
    assert code == 1 and _one_line(err, "train_net") == (
        f"[train_net] output folder {tmp_path / 'a_file' / 'out'} cannot be written (Not a directory) — set "
        "OUTPUT_DIR to a folder you can write, e.g. OUTPUT_DIR output/my_run")


def test_every_test_dataset_is_checked_before_the_first_runs(tmp_path, monkeypatch):
    ade, voc = _unique("ade"), _unique("voc")
    register_ade20k_150(str(tmp_path / "datasets"), name=ade)
    register_voc_20(str(tmp_path / "datasets"), name=voc)
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    names = f'("{ade}","{voc}","ade20k_150_tset_sem_seg")'
    code, _, err = _in_process("tools/train_net.py", ["--config-file", cfg, "--eval-only", "OUTPUT_DIR", out,
                                                      "DATASETS.TEST", names], monkeypatch)
    root = tmp_path / "datasets"
    line = _one_line(err, "train_net")
    assert code == 1 and line.startswith(
        f"[train_net] 3 of 3 test datasets cannot be evaluated: {ade}: image folder "
        f"{root}/ADEChallengeData2016/images/validation does not exist (prepare it with "
        f"datasets/prepare_ade20k_150.py); {voc}: image folder {root}/VOCdevkit/VOC2012/JPEGImages does not exist "
        "(prepare it with datasets/prepare_voc.py); 'ade20k_150_tset_sem_seg' is not a registered dataset "
        "(nearest: ade20k_150_test_sem_seg, "), line  # the other near names depend on what tests registered
    assert line.endswith(") — prepare them (datasets/README.md, datasets/prepare_*.py) or remove them from "
                         "DATASETS.TEST")
    assert os.listdir(out) == []  # nothing was evaluated, no partial summary


def test_a_training_dataset_root_that_does_not_exist(tmp_path, monkeypatch):
    name = _unique("sa1b")
    register_sa1b(name, str(tmp_path / "no_sa1b"))
    cfg = write_tiny_config(tmp_path / "tiny.yaml")
    code, _, err = _in_process("tools/train_net.py", ["--config-file", cfg, "OUTPUT_DIR", tmp_path / "out",
                                                      "DATASETS.TRAIN", f'("{name}",)'], monkeypatch)
    assert code == 1 and _one_line(err, "train_net") == (
        f"[train_net] DATASETS.TRAIN {name}: root {tmp_path / 'no_sa1b'} does not exist — download and prepare it "
        "(datasets/README.md), or set $DETECTRON2_DATASETS to the folder that holds it")


def test_missing_clip_weights_with_several_gpus_are_checked_once_before_spawning(tmp_path, monkeypatch):
    import detectron2.engine

    monkeypatch.setattr(detectron2.engine, "launch", lambda *a, **k: pytest.fail("worker processes were started"))
    monkeypatch.setattr(torch.multiprocessing, "start_processes",  # a CPU run's gloo launch (pixelclip/launch.py)
                        lambda *a, **k: pytest.fail("worker processes were started"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = _in_process("tools/train_net.py", [
        "--config-file", REPO / "configs" / "pixelclip_vitb.yaml", "--num-gpus", "4", "MODEL.DEVICE", "cpu",
        "OUTPUT_DIR", tmp_path / "out"], monkeypatch)
    line = _one_line(err, "train_net")
    assert code == 1 and line.startswith(
        "[train_net] CLIP weights 'ViT-B-16-quickgelu' / 'openai' are not in the local cache and cannot be "
        "downloaded from the Hugging Face Hub repository timm/vit_base_patch16_clip_224.openai (HF_HUB_OFFLINE is "
        "set) — on a machine with internet run ")


def test_demo_vocabulary_mistakes(tmp_path, monkeypatch):
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    args = ["--config-file", cfg, "--input", tmp_path / "images", "--output", tmp_path / "out", "--vocabulary"]
    code, _, err = _in_process("tools/demo.py", [*args, tmp_path / "classes.txt"], monkeypatch)
    assert code == 1 and _one_line(err, "demo") == (
        f"[demo] vocabulary file not found: {tmp_path / 'classes.txt'} — give an existing .txt (one class a line) "
        "or .json (a list) file, class names \"a,b,c\", a packaged vocabulary (ade150, ade847, pc59, pc60, pc459, "
        "coco_stuff171, voc20, voc21, cityscapes19) or a registered dataset name")
    code, _, err = _in_process("tools/demo.py", [*args, "cat,dog,sky,cat"], monkeypatch)
    assert code == 1 and _one_line(err, "demo") == (
        "[demo] vocabulary 'cat,dog,sky,cat' repeats 1 class name(s): 'cat' at ids 0, 3 — list each class once "
        "(its position is its label id); put synonyms in one entry, e.g. 'sofa, couch'")
    code, _, err = _in_process("tools/demo.py", [*args, "cat,,dog"], monkeypatch)
    assert code == 1 and _one_line(err, "demo") == (
        "[demo] vocabulary 'cat,,dog' has an empty class name at position 1 (counting from 0; the position is the "
        "label id) — remove the extra ',' or name the class there, so that every id is the class you mean")
    assert os.listdir(tmp_path / "out") == []


def test_export_clip_on_a_file_that_is_not_a_checkpoint(tmp_path, monkeypatch):
    notes = tmp_path / "model_final.pth"
    notes.write_text("loss went down, lr 1e-4\n")
    args = ["open-clip", "--weights", notes, "--model-name", "PixelCLIP-Tiny-ViT", "--output", tmp_path / "out.pt"]
    code, _, err = _in_process("tools/export_clip.py", args, monkeypatch)
    assert code == 1 and _one_line(err, "export_clip") == (
        f"[export_clip] {notes} is not a checkpoint: it is neither a PyTorch nor a pickle file (it starts with "
        "b'loss wen') — give a Detectron2 / PixelCLIP checkpoint (.pth, .pkl), an open_clip or OpenAI CLIP state "
        "dict or a .safetensors file; other pickled objects are not loaded, since unpickling them runs code")
    assert not (tmp_path / "out.pt").exists()


# ------------------------------------------------------------------------ runs (subprocesses)
def test_eval_only_refuses_a_checkpoint_of_another_model(tmp_path):
    """DINO ViT-S weights and a PixelCLIP checkpoint of another CLIP used to load nothing and score
    the untouched model with exit status 0."""
    from fixtures.benchmarks import make_ade20k_150_miniature

    make_ade20k_150_miniature(tmp_path)  # the config's DATASETS.TEST, under $DETECTRON2_DATASETS = tmp_path
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    torch.save(_dino_vits_like_state_dict(), tmp_path / "dino_vits16.pth")
    torch.manual_seed(0)
    other = build_model(make_tiny_cfg("PixelCLIP-Synthetic-ViT"))
    torch.save({"model": other.state_dict()}, tmp_path / "other_clip.pth")
    for weights, expected in (
        ("dino_vits16.pth", "does not fit this model: image encoder: no weights for 32 tensors ("
                            "backbone.clip_model.visual.class_embedding, "),
        ("other_clip.pth", "does not fit this model: image encoder: no weights for 32 tensors ("),
    ):
        out = tmp_path / f"out_{weights}"
        result = run_tool("tools/train_net.py", ["--config-file", str(cfg), "--eval-only", "OUTPUT_DIR", str(out),
                                                 "MODEL.WEIGHTS", str(tmp_path / weights)], tmp_path, threads=1)
        line = _one_line(result.stderr, "train_net")
        assert result.returncode == 1 and line.startswith(f"[train_net] {tmp_path / weights} {expected}"), line
        before = result.stdout.splitlines() + result.stderr.splitlines()[:-1]  # D2's ~500 lines of dumps held back
        assert len(before) < 20 and "Running with full config" not in result.stdout, "\n".join(before)
        assert line.endswith("or set MODEL.PIXELCLIP.ALLOW_PARTIAL_WEIGHTS True to load it partially on purpose")
        assert not (out / "summary.json").exists() and not (out / "inference").exists()
        assert line in (out / "log.txt").read_text()  # the record of the run has it too


def test_test_images_without_labels_are_said_before_the_dumps(tmp_path):
    from fixtures.benchmarks import make_voc_20_miniature

    voc = make_voc_20_miniature(tmp_path / "datasets")
    voc.label_files[0].unlink()
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    result = run_tool("tools/train_net.py", ["--config-file", str(cfg), "--eval-only", "OUTPUT_DIR", str(out),
                                             "DATASETS.TEST", '("voc_2012_test_sem_seg",)'], tmp_path / "datasets",
                      threads=1)
    line = _one_line(result.stderr, "train_net")
    assert result.returncode == 1 and line.startswith(
        "[train_net] 1 of 1 test datasets cannot be evaluated: voc_2012_test_sem_seg: images and labels do not pair "
        "up: 1 of 2 images"), line
    before = result.stdout.splitlines() + result.stderr.splitlines()[:-1]
    assert len(before) < 20 and "Running with full config" not in result.stdout, "\n".join(before)
    log = (out / "log.txt").read_text()  # the record of the run keeps the dumps, then the error
    assert "Running with full config" in log and log.rstrip().endswith(line)


def test_training_log_holds_the_package_lines_and_the_skipped_samples(tmp_path):
    root = make_sa1b_folder(tmp_path / "datasets")
    bad = root / "sa1b" / "images" / "sa_000000" / "sa_2.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    cfg = write_tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    result = run_tool("tools/train_net.py", ["--config-file", str(cfg), "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "2",
                                             "DATALOADER.NUM_WORKERS", "1"], root, threads=1)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "Unlabeled dataset" in log and "4 images with masks" in log  # pixelclip.data, main process
    assert f"Skipping {bad}: corrupt or unreadable image" in log  # pixelclip.data.mappers, in a loader worker
    # the worker met the bad image once or more (it prefetches): one line with the counts of every reason
    assert re.search(r"Skipped training samples in this process and its data-loader workers: corrupt image [1-9]\d*, "
                     r"bad mask file 0, no mask left after cropping 0\n", log)


def test_training_where_every_sample_is_bad_stops_early(tmp_path):
    root = make_sa1b_folder(tmp_path / "datasets")
    images, masks = root / "sa1b" / "images" / "sa_000000", root / "sa1b" / "annotations" / "sa_000000"
    for i in (1, 2):
        (images / f"sa_{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    for i in (3, 4):
        (masks / f"sa_{i}.json").write_text('{"image": {"file_name": "sa_3.jpg", "height": 96, "width": 96}, '
                                            '"annotations": []}')
    cfg = write_tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    result = run_tool("tools/train_net.py", ["--config-file", str(cfg), "OUTPUT_DIR", str(out)], root, threads=1)
    line = _one_line(result.stderr, "train_net")
    assert result.returncode == 1 and "Sample larger than population" not in result.stderr
    assert line.startswith("[train_net] no usable training sample: all 4 samples tried (of 4) were skipped: "
                           f"corrupt image 2 (e.g. {images}{os.sep}sa_"), line
    assert "bad mask file 2 (e.g. " in line and line.endswith("or point DATASETS.TRAIN at another set")
    assert not [p for p in os.listdir(out) if p.endswith(".pth") or p == "last_checkpoint"]


def test_an_undecodable_eval_image_keeps_the_other_datasets(tmp_path):
    from fixtures.benchmarks import make_ade20k_150_miniature, make_voc_20_miniature

    root = tmp_path / "datasets"
    make_voc_20_miniature(root)
    ade = make_ade20k_150_miniature(root)
    data = ade.image_files[1].read_bytes()
    ade.image_files[1].write_bytes(data[: len(data) * 85 // 100])  # the header is intact: only decoding fails
    cfg = _tiny_config(tmp_path / "tiny.yaml", "")
    out = tmp_path / "out"
    result = run_tool("tools/train_net.py", [
        "--config-file", str(cfg), "--eval-only", "OUTPUT_DIR", str(out), "DATALOADER.NUM_WORKERS", "1",
        "DATASETS.TEST", '("ade20k_150_test_sem_seg","voc_2012_test_sem_seg")'], root, threads=1)
    line = _one_line(result.stderr, "train_net")
    assert result.returncode == 1
    assert line.startswith(f"[train_net] 1 of 2 test datasets could not be evaluated: ade20k_150_test_sem_seg: "
                           f"cannot decode test image {ade.image_files[1]} ("), line
    assert (f"— replace it with an intact copy (re-extract the download), or remove it together with its label "
            f"file {ade.label_files[1]} — fix them as said and evaluate them again (DATASETS.TEST); the results of "
            f"the other 1 are in {out / 'summary.json'}") in line
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["voc_2012_test_sem_seg"] and summary["voc_2012_test_sem_seg"]["images"] == 2


def _ctrl_c_ready():
    """In the child: its own process group (Ctrl-C reaches the whole group) and SIGINT's default action,
    even where this test runs in a background job that ignores SIGINT."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_training_names_the_last_checkpoint_and_the_resume_command(tmp_path):
    root = make_sa1b_folder(tmp_path / "datasets")
    cfg = write_tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    args = ["tools/train_net.py", "--config-file", str(cfg), "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "1000",
            "SOLVER.CHECKPOINT_PERIOD", "2"]
    env = dict(os.environ, DETECTRON2_DATASETS=str(root), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=_ctrl_c_ready)
    try:
        for line in child.stdout:  # Ctrl-C when the second checkpoint is being written (or just written)
            if "Saving checkpoint to" in line and "model_0000003.pth" in line:
                os.killpg(child.pid, signal.SIGINT)
                break
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, stderr[-3000:]
    last = (out / "last_checkpoint").read_text()
    assert last in ("model_0000001.pth", "model_0000003.pth") and (out / last).is_file()
    assert _one_line(stderr, "train_net") == (
        f"[train_net] interrupted (Ctrl-C); the last checkpoint is {out / last} — to resume from it: "
        f"python {' '.join(args[:1] + ['--resume'] + args[1:])}")
    assert not (out / "model_final.pth").exists()


def test_ctrl_c_under_two_gloo_processes_exits_130_with_one_line_and_the_run_resumes(tmp_path):
    """Ctrl-C reaches the launcher and both ranks (one process group): exit status 130, one line with the
    resume command and no traceback from any rank; that command (with a shorter schedule) resumes."""
    root = make_sa1b_folder(tmp_path / "datasets")
    cfg = write_tiny_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    args = ["tools/train_net.py", "--config-file", str(cfg), "--num-gpus", "2", "OUTPUT_DIR", str(out),
            "SOLVER.MAX_ITER", "1000", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.IMS_PER_BATCH", "2", "MODEL.DEVICE", "cpu"]
    env = dict(os.environ, DETECTRON2_DATASETS=str(root), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, preexec_fn=_ctrl_c_ready)
    printed = []
    try:
        for line in child.stdout:
            printed.append(line)
            if "Saving checkpoint to" in line and "model_0000003.pth" in line:
                os.killpg(child.pid, signal.SIGINT)
                break
        printed.append(child.communicate(timeout=90)[0])
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    printed = "".join(printed)
    assert child.returncode == 130, printed[-3000:]
    line = _one_line(printed, "train_net")
    last = (out / "last_checkpoint").read_text()
    assert last in ("model_0000001.pth", "model_0000003.pth") and (out / last).is_file()
    resume = f"python {' '.join(args[:1] + ['--resume'] + args[1:])}"
    assert line == f"[train_net] interrupted (Ctrl-C); the last checkpoint is {out / last} — to resume from it: {resume}"

    # the printed command, with the schedule cut short and one process, continues from that checkpoint
    command = resume.split()[1:] + ["SOLVER.MAX_ITER", "6"]
    command[command.index("--num-gpus") + 1] = "1"
    result = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert f"Loading from {out / last}" in log and "Starting training from iteration " + (
        "2" if last == "model_0000001.pth" else "4") in log
    assert (out / "model_final.pth").is_file()


def test_demo_keeps_relative_paths_takes_opts_and_runs_on_the_cpu(tmp_path):
    cfg = _tiny_config(tmp_path / "tiny.yaml")
    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "photos" / folder / "x.jpg")
    out = tmp_path / "out"
    device = "cuda"  # the config's device; the demo falls back to the CPU where there is no GPU
    result = run_tool("tools/demo.py", ["--config-file", str(cfg), "--input", str(tmp_path / "photos"), "--output",
                                        str(out), "--vocabulary", "sky,road,tree", "--opts", "MODEL.DEVICE", device,
                                        "MODEL.PIXELCLIP.TEST.FLIP", "True"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for folder in ("a", "b"):
        labels = np.array(Image.open(out / folder / "x_labels.png"))
        assert labels.shape == (40, 56) and labels.max() < 3
        assert (out / folder / "x_overlay.png").is_file()
    assert "wrote overlays and label maps of 2 images (3 classes)" in result.stdout
    if not torch.cuda.is_available():
        assert "no CUDA device: running on the CPU" in result.stdout + result.stderr
