"""Checkpoint files in and out: any container (Detectron2, open_clip, plain, pickle, safetensors) to a
state dict of tensors, and atomic writes."""
import logging
import os
import pickle
import re
import warnings
import zipfile
from typing import Dict, Mapping

import numpy as np
import torch

from ..errors import ExportError
from ..utils.io import atomic_write

logger = logging.getLogger(__name__)


def to_tensors(sd: Mapping) -> Dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in sd.items()
            if isinstance(v, (torch.Tensor, np.ndarray))}


# What a checkpoint may hold besides tensors, containers, numbers and strings (torch's ``weights_only``
# set): numpy arrays, scalars and dtypes (Detectron2 model-zoo ``.pkl`` files, some release checkpoints).
# Nothing else is unpickled: unpickling other types runs arbitrary code.
_NUMPY_GLOBALS = {
    "numpy.core.multiarray._reconstruct": np._core.multiarray._reconstruct,
    "numpy._core.multiarray._reconstruct": np._core.multiarray._reconstruct,
    "numpy.core.multiarray.scalar": np._core.multiarray.scalar,
    "numpy._core.multiarray.scalar": np._core.multiarray.scalar,
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
}
_NUMPY_GLOBALS.update({f"numpy.dtypes.{type(np.dtype(c)).__name__}": type(np.dtype(c))
                       for c in "?bBhHiIlLqQefdgFDGSUV"})
_NOT_A_CHECKPOINT = ("give a Detectron2 / PixelCLIP checkpoint (.pth, .pkl), an open_clip or OpenAI CLIP state dict "
                     "or a .safetensors file; other pickled objects are not loaded, since unpickling them runs code")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` for pickled checkpoints (``.pkl``) that builds containers, numbers, strings,
    ``collections.OrderedDict`` and the numpy types of :data:`_NUMPY_GLOBALS`, and refuses any other global."""

    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[full]
        if full == "collections.OrderedDict":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"GLOBAL {full} was not an allowed global")


def _load_pickle(path: str) -> object:
    with open(path, "rb") as f:
        return _ArraysOnlyUnpickler(f, encoding="latin1").load()


def _why_not(path: str, error: Exception) -> str:
    """What a failed load says about the file, in a few words."""
    text = " ".join(str(error).split())
    refused = re.findall(r"GLOBAL ([\w.<>]+)", text)  # torch's and _ArraysOnlyUnpickler's wordings
    is_zip = zipfile.is_zipfile(path)
    if is_zip:  # a torch file: ask torch for the full names of what it refused
        try:
            refused = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in _NUMPY_GLOBALS]
        except Exception:  # damaged: keep what the message said
            pass
    if refused:
        return f"it pickles {', '.join(refused[:3])}, not only tensors, arrays, numbers and strings"
    if is_zip or "zip archive" in text:
        return f"it is a damaged or truncated PyTorch file ({type(error).__name__}: {text[:120]})"
    with open(path, "rb") as f:
        head = f.read(8)
    return f"it is neither a PyTorch nor a pickle file (it starts with {head!r})"


def read_checkpoint(path: str) -> object:
    """The raw object stored in a checkpoint file (``.pth``/``.pt``/``.bin`` torch files, ``.pkl``
    Detectron2 pickles, ``.safetensors``), unpickled safely: torch's ``weights_only`` load, which
    builds tensors, containers, numbers and strings only, plus numpy arrays (:data:`_NUMPY_GLOBALS`);
    a plain pickle (``.pkl``, or another name that is not a torch file) gets the same allow-list.

    Raises:
        ExportError: the file is missing, or is not a checkpoint (a text file, another binary, a
            pickle of any other object), naming the file and what it holds.
    """
    if not os.path.isfile(path):
        raise ExportError(f"checkpoint file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        if path.endswith(".pkl"):
            return _load_pickle(path)
        safe = [(obj, name) for name, obj in _NUMPY_GLOBALS.items()]
        try:
            with torch.serialization.safe_globals(safe), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            with open(path, "rb") as f:
                plain_pickle = f.read(1) == b"\x80" and not zipfile.is_zipfile(path)  # PROTO opcode first
            if not plain_pickle:
                raise
        return _load_pickle(path)  # a plain pickle under a torch name
    except Exception as e:  # not a checkpoint, a truncated one, or a pickle of something else
        raise ExportError(f"{path} is not a checkpoint: {_why_not(path, e)}", _NOT_A_CHECKPOINT) from None


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
        raise ExportError(f"{path} does not hold a state dict (found {type(checkpoint).__name__})", _NOT_A_CHECKPOINT)
    sd = to_tensors(sd)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if not sd:
        raise ExportError(f"{path} holds no tensors", _NOT_A_CHECKPOINT)
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
