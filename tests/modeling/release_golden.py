"""The authors' release on a tiny model (tests/fixtures/release_golden_tiny.pt, see its .md): loading it and
building our PixelCLIP from its config with the project's own configuration (configs/pixelclip_vitb.yaml).

The fixture holds the release's own outputs; it is never regenerated from this project's code."""
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Dict, List

import open_clip
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from pixelclip import add_pixelclip_config
from pixelclip.export import convert_release_state_dict, load_release_checkpoint

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_PATH = ROOT / "tests" / "fixtures" / "release_golden_tiny.pt"
VITB_CONFIG = ROOT / "configs" / "pixelclip_vitb.yaml"


@lru_cache(maxsize=1)
def golden() -> dict:
    """The fixture (read once per test process; callers must not modify it)."""
    return torch.load(GOLDEN_PATH, map_location="cpu", weights_only=False)


@lru_cache(maxsize=1)
def _register_architecture() -> str:
    """Registers the golden's open_clip architecture json (a test-only name) with open_clip."""
    cfg = golden()["config"]
    folder = Path(tempfile.mkdtemp(prefix="release_golden_arch_"))
    try:
        (folder / f"{cfg['open_clip_model_name']}.json").write_text(json.dumps(cfg["open_clip_model_cfg"]))
        open_clip.add_model_config(folder)  # reads the json now: the folder is not needed afterwards
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return cfg["open_clip_model_name"]


def vitb_config():
    """The effective configuration of the paper's ViT-B/16 recipe: our defaults + configs/pixelclip_vitb.yaml."""
    cfg = get_cfg()
    add_pixelclip_config(cfg)
    cfg.merge_from_file(str(VITB_CONFIG))
    return cfg


def golden_config(templates: str = "single"):
    """The ViT-B recipe with only the golden's architecture and sizes changed (everything else, e.g. ε,
    momentum, Sinkhorn iterations, solver, must be the recipe's own)."""
    c = golden()["config"]
    cfg = vitb_config()
    cfg.MODEL.DEVICE = "cpu"
    p = cfg.MODEL.PIXELCLIP
    p.CLIP_MODEL_NAME = _register_architecture()
    p.CLIP_PRETRAINED = ""
    p.CLIP_RESOLUTION = tuple(c["clip_resolution"])
    p.MASK_RESOLUTION = int(c["mask_resolution"][0])
    p.NUM_PROMPTS = int(c["num_prompts"])
    p.PROMPT_LENGTH = int(c["prompt_length"])
    p.TEST.TEMPLATES = templates
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    return cfg


def golden_model(templates: str = "single", dtype=torch.float32):
    """Our PixelCLIP built from the golden's config, weights loaded only through load_release_checkpoint.

    Returns (model, import report)."""
    torch.manual_seed(0)
    model = build_model(golden_config(templates))
    report = load_release_checkpoint(model, golden()["release_state_dict"])
    return model.to(dtype), report


def ours(release_named: Dict[str, object]) -> Dict[str, object]:
    """Re-key a dict of release names (grads, lr, ...) with the importer's own mapping."""
    converted, report = convert_release_state_dict(release_named)
    assert not report.unplaced, report.unplaced
    return converted


def training_batch() -> List[Dict]:
    """The golden's two training images as the mapper gives them: weak view, strong view, unlabeled masks."""
    b = golden()["batch"]
    batch = []
    for weak, strong, masks in zip(b["weak"], b["strong"], b["masks"]):
        inst = Instances(tuple(weak.shape[-2:]))
        inst.gt_masks = BitMasks(masks.clone())
        batch.append({"image": weak.clone(), "image_strong": strong.clone(), "instances": inst})
    return batch


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (the fixture README's relative error)."""
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
