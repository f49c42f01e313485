"""Checkpoint files in and out, with torch only (this package runs in SAN's environment as well)."""
import os
import tempfile
from typing import Dict, Mapping, Tuple

import torch

from .errors import SanWeightsError

# PixelCLIP's Detectron2 checkpoints keep the whole open_clip model here (pixelclip/export/layout.py).
PIXELCLIP_CLIP_PREFIX = "backbone.clip_model."
# Scalar entries of OpenAI-layout state dicts (tools/export_clip.py openai writes them too).
OPENAI_SCALARS = ("input_resolution", "context_length", "vocab_size")


def read_file(path: str, trust_pickle: bool = False) -> object:
    """The object stored in a torch checkpoint file, read with ``weights_only`` (tensors and plain
    containers). A file that holds other objects is refused unless ``trust_pickle``: unpickling it
    in full runs whatever code it names."""
    if not os.path.isfile(path):
        raise SanWeightsError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        restricted = e
    if not trust_pickle:
        raise SanWeightsError(
            f"{path} cannot be read as weights only ({type(restricted).__name__}: "
            f"{' '.join(str(restricted).split())[:200]}); if it is truncated, write it again; if it holds other "
            "Python objects and you trust where it came from, add --trust-pickle")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise SanWeightsError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e


def model_dict(container: object, path: str) -> Dict[str, torch.Tensor]:
    """The state dict inside a checkpoint object: Detectron2's ``{"model": ...}``, open_clip's
    ``{"state_dict": ...}`` or a plain dict (the same object, so edits reach the container)."""
    if isinstance(container, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(container.get(key), Mapping):
                return container[key]
        return container
    raise SanWeightsError(f"{path} does not hold a state dict (found {type(container).__name__})")


def read_clip_state_dict(path: str, trust_pickle: bool = False) -> Dict[str, torch.Tensor]:
    """An open_clip ``CLIP`` state dict (``visual.*`` and the text tower) from any of: the open_clip
    export (``tools/export_clip.py open-clip``), the OpenAI-layout export (``... openai``; its three
    scalar entries dropped), or a PixelCLIP Detectron2 checkpoint (``backbone.clip_model.*``)."""
    sd = model_dict(read_file(path, trust_pickle), path)
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if any(k.startswith(PIXELCLIP_CLIP_PREFIX) for k in sd):
        sd = {k[len(PIXELCLIP_CLIP_PREFIX):]: v for k, v in sd.items() if k.startswith(PIXELCLIP_CLIP_PREFIX)}
    sd = {k: v for k, v in sd.items() if k not in OPENAI_SCALARS}
    if not any(k.startswith("visual.") for k in sd):
        sample = ", ".join(sorted(sd)[:4])
        raise SanWeightsError(f"{path} holds no open_clip image encoder ('visual.*'; first keys: {sample})",
                              "give the file written by tools/export_clip.py open-clip (or openai), or a "
                              "PixelCLIP checkpoint")
    return sd


def read_san_checkpoint(path: str, trust_pickle: bool = False) -> Tuple[object, Dict[str, torch.Tensor]]:
    """``(container, state dict)`` of a SAN checkpoint (Detectron2's ``{"model": ...}`` or a plain dict);
    the state dict is the container's own, so a merge edits it in place."""
    container = read_file(path, trust_pickle)
    return container, model_dict(container, path)


def write_file(obj: object, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a failed write leaves no half file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
