"""The SAN key layout recorded from SAN's own code (fixtures/san_tiny_layout.json, written by
fixtures/record_san_layout.py with MendelXu/SAN and open_clip 2.16), and tiny CLIPs / SAN state dicts
built to that layout."""
import json
import runpy
import sys
from pathlib import Path
from typing import Dict

import open_clip
import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "san_tiny_layout.json"
LAYOUT = json.loads(FIXTURE.read_text())
SPLIT = LAYOUT["feature_last_layer_idx"]  # 3: SAN's clip_visual_extractor holds blocks 0..2
SIDE_ADAPTER_KEY = "side_adapter_network.query_embed"
SAN_POSITIONAL_KEY = "clip_visual_extractor.positional_embedding"


def tiny_clip_state_dict(seed: int) -> Dict[str, torch.Tensor]:
    """A random CLIP of the fixture's open_clip architecture (4 ViT blocks, QuickGELU)."""
    torch.manual_seed(seed)
    return {k: v.detach().clone() for k, v in open_clip.model.CLIP(**LAYOUT["open_clip_config"]).state_dict().items()}


def fine_tuned(clip_sd: Dict[str, torch.Tensor], seed: int = 7) -> Dict[str, torch.Tensor]:
    """``clip_sd`` with every image-encoder tensor moved (a stand-in for PixelCLIP's fine-tuning; the text
    tower stays, as PixelCLIP never trains it)."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.01 * torch.randn(v.shape, generator=g) if k.startswith("visual.") else v.clone()
            for k, v in clip_sd.items()}


def san_state_dict(clip_sd: Dict[str, torch.Tensor], seed: int = 3) -> Dict[str, torch.Tensor]:
    """A SAN state dict holding ``clip_sd`` where SAN's own code puts each tensor (the fixture's
    ``san_to_open_clip``, recorded by tensor identity from SAN's modules), SAN's own tensors
    (background embedding; the causal-mask buffer open_clip does not save) random, SAN's positional
    embedding moved (SAN trains it), and one side-adapter tensor."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, source in LAYOUT["san_to_open_clip"].items():
        shape = LAYOUT["san_state_dict"][key]
        out[key] = clip_sd[source].clone() if source in clip_sd else torch.randn(shape, generator=g)
        assert list(out[key].shape) == shape, key
    out[SAN_POSITIONAL_KEY] += 0.02 * torch.randn(out[SAN_POSITIONAL_KEY].shape, generator=g)
    out[SIDE_ADAPTER_KEY] = torch.randn(1, 10, 240, generator=g)
    return out


def run_script(script: Path, args, capsys):
    """``python <script> <args>`` in this process: (exit status, captured output)."""
    argv = sys.argv
    sys.argv = [str(script)] + [str(a) for a in args]
    try:
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    return stop.value.code, capsys.readouterr()
