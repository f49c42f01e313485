"""Checkpoint files in and out: any container (Detectron2, open_clip, plain, pickle, safetensors) to a
state dict of tensors, and atomic writes."""
import logging
import os
import pickle
from typing import Dict, Mapping

import numpy as np
import torch

from ..errors import ExportError
from ..utils.io import atomic_write

logger = logging.getLogger(__name__)


def to_tensors(sd: Mapping) -> Dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in sd.items()
            if isinstance(v, (torch.Tensor, np.ndarray))}


def read_checkpoint(path: str) -> object:
    """The raw object stored in a checkpoint file (``.pth``/``.pt``/``.bin`` torch files, ``.pkl``
    Detectron2 pickles, ``.safetensors``)."""
    if not os.path.isfile(path):
        raise ExportError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Detectron2 training checkpoints may hold non-tensor trainer state
        logger.warning("%s holds more than tensors; loading it with weights_only=False (trust the file)", path)
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ExportError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e


def state_dict_of(checkpoint: object, path: str = "<checkpoint>") -> Dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint object (D2's ``{"model": ...}``, open_clip's
    ``{"state_dict": ...}``, or a plain state dict), tensors only, ``module.`` prefixes removed."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("model"), Mapping):
        sd = checkpoint["model"]
    elif isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        sd = checkpoint["state_dict"]
    elif isinstance(checkpoint, Mapping):
        sd = checkpoint
    else:
        raise ExportError(f"{path} does not hold a state dict (found {type(checkpoint).__name__})")
    sd = to_tensors(sd)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if not sd:
        raise ExportError(f"{path} holds no tensors")
    return sd


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Model state dict of a checkpoint file (see :func:`state_dict_of`)."""
    return state_dict_of(read_checkpoint(path), path)


def save_checkpoint(obj: object, path: str, as_pickle: bool = False) -> None:
    """Write ``obj`` with ``torch.save`` (or ``pickle`` for ``.pkl`` targets) atomically
    (:func:`pixelclip.utils.io.atomic_write`: temporary file beside ``path``, fsync, rename)."""
    if as_pickle:
        atomic_write(path, writer=lambda f: pickle.dump(obj, f))
    else:
        atomic_write(path, writer=lambda f: torch.save(obj, f))
