"""tools/train_net.py end to end on CPU: train, checkpoint, resume exactly, two gloo processes."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelclip.data.mask_io import encode_masks, write_mask_file
from tests.tools.run_tool import REPO, run_tool


def make_sa1b_folder(root: Path, num_images: int = 4, size: int = 96) -> Path:
    """An SA-1B folder in the prepared layout (images/ + annotations/), every image the same
    4-quadrant picture with one mask per quadrant, so that the data order does not matter."""
    rng = np.random.default_rng(0)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    masks = np.zeros((4, size, size), dtype=bool)
    h = size // 2
    for q, (y, x) in enumerate([(0, 0), (0, h), (h, 0), (h, h)]):
        image[y:y + h, x:x + h] = rng.integers(0, 256, 3)
        masks[q, y:y + h, x:x + h] = True
    for i in range(num_images):
        img_path = root / "sa1b" / "images" / "sa_000000" / f"sa_{i + 1}.jpg"
        img_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(img_path, quality=95)
        info = {"file_name": img_path.name, "height": size, "width": size, "image_id": i + 1}
        write_mask_file(root / "sa1b" / "annotations" / "sa_000000" / f"sa_{i + 1}.json", info, encode_masks(masks))
    return root


def write_tiny_config(path: Path) -> Path:
    path.write_text(f"""_BASE_: "{REPO / 'configs' / 'Base-PixelCLIP.yaml'}"
MODEL:
  DEVICE: cpu
  PIXELCLIP:
    CLIP_MODEL_NAME: PixelCLIP-Tiny-ViT
    CLIP_PRETRAINED: ""
    CLIP_RESOLUTION: (64, 64)
    NUM_PROMPTS: 8
    MASK_RESOLUTION: 32
DATASETS:
  TRAIN: ("sa1b_train",)
  TEST: ()
INPUT:
  MIN_SIZE_TRAIN: (96,)
  CROP:
    ENABLED: False
  COLOR_AUG_SSD: False
  STRONG_AUG: False
  RANDOM_FLIP: none
SOLVER:
  IMS_PER_BATCH: 2
  MAX_ITER: 4
  CHECKPOINT_PERIOD: 2
DATALOADER:
  NUM_WORKERS: 0
SEED: 1
""")
    return path


def run_train_net(args, datasets_root: Path, timeout: int = 300):
    return run_tool("tools/train_net.py", args, datasets_root, timeout=timeout, threads=1)


def _model_state(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_net")
    make_sa1b_folder(root / "datasets")
    return root, write_tiny_config(root / "tiny.yaml")


def test_help():
    out = run_train_net(["--help"], REPO)
    assert out.returncode == 0 and "--eval-only" in out.stdout and "--num-gpus" in out.stdout


def test_paper_config_parses_and_names_the_missing_weights(tmp_path):
    out = run_train_net(["--config-file", str(REPO / "configs" / "pixelclip_vitb.yaml"), "MODEL.DEVICE", "cpu",
                         "OUTPUT_DIR", str(tmp_path)], tmp_path, timeout=240)
    assert out.returncode != 0
    assert "ViT-B-16" in out.stderr and "openai" in out.stderr and "CLIP_PRETRAINED" in out.stderr
    assert "Traceback" not in out.stderr


def test_train_checkpoint_and_exact_resume(workspace):
    root, cfg = workspace
    straight, split = root / "straight", root / "split"
    out = run_train_net(["--config-file", str(cfg), "OUTPUT_DIR", str(straight)], root / "datasets")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (straight / "model_final.pth").is_file() and (straight / "model_0000001.pth").is_file()
    # resume from the iteration-2 checkpoint of the same schedule in a fresh folder
    split.mkdir()
    shutil.copy(straight / "model_0000001.pth", split / "model_0000001.pth")
    (split / "last_checkpoint").write_text("model_0000001.pth")
    out = run_train_net(["--config-file", str(cfg), "--resume", "OUTPUT_DIR", str(split)], root / "datasets")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Starting training from iteration 2" in out.stdout + out.stderr
    a, b = _model_state(straight / "model_final.pth"), _model_state(split / "model_final.pth")
    assert any(k.startswith("teacher.encoder.") for k in a), "the EMA teacher is saved"
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_two_cpu_processes_with_gloo(workspace):
    root, cfg = workspace
    out = run_train_net(["--config-file", str(cfg), "--num-gpus", "2", "OUTPUT_DIR", str(root / "ddp"),
                         "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "100"], root / "datasets")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (root / "ddp" / "model_final.pth").is_file()
