"""The one checkpoint loader and saver: Detectron2's, with refusals instead of silent partial loads.

:class:`PixelCLIPCheckpointer` is D2's ``DetectionCheckpointer`` (``tools/train_net.py --eval-only``,
the trainer's ``resume_or_load`` and periodic checkpoints, ``tools/demo.py``, the synthetic demo),
with three changes:

* after ``MODEL.WEIGHTS`` is loaded, the keys that found no place are inspected. If the image
  encoder (any ``clip_model.visual.*`` tensor) or a trained part (a parameter with
  ``requires_grad``: the class prompts, the decoder) got no weights, or got tensors of another
  shape, it stops with one :class:`~pixelclip.errors.CheckpointError` naming the file and what
  was missing / unexpected (counts and a few names). D2 only logs this, and ``--eval-only`` then
  scores the untouched initial model. ``MODEL.PIXELCLIP.ALLOW_PARTIAL_WEIGHTS True`` loads such
  a file anyway (with a warning). Checkpoints of the older layout, which also stored the frozen
  text tower under ``text_encoder.``, ``prompts.text_encoder.`` and ``classifier.text_encoder.`` (copies
  of ``backbone.clip_model.*``), load: those copies are dropped (:func:`drop_text_tower_copies`).
* a checkpoint of the authors' release (``sem_seg_head.predictor.clip_model.*``) is converted on
  the fly with :func:`pixelclip.export.convert_release_state_dict` (the conversion
  ``tools/export_clip.py import-release`` writes to disk), and then checked the same way.
* a ``.pkl`` file (Detectron2 / Caffe2 model-zoo format) is first read with an unpickler that
  admits only numpy arrays and plain containers (:func:`check_pickle_is_plain`); D2 itself calls
  ``pickle.load``, which runs whatever code a crafted file names. ``.pth`` files are read by
  ``torch.load``, whose default (``weights_only``) is already restricted.
* ``save`` writes atomically (:func:`pixelclip.utils.io.atomic_write`): a full disk or a killed
  job leaves the previous checkpoint and ``last_checkpoint`` as they were, never a truncated
  ``model_000XXXX.pth``; the temporary file a ``kill -9`` leaves is removed when the next run's
  checkpointer starts and before each save (:func:`pixelclip.utils.io.remove_stale_temp_files`).
"""
import logging
import os
import pickle
import re
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from .errors import CheckpointError
from .utils.io import atomic_write, remove_stale_temp_files

logger = logging.getLogger(__name__)

__all__ = ["PixelCLIPCheckpointer", "build_checkpointer", "check_pickle_is_plain", "load_report", "describe_keys", "drop_text_tower_copies"]

_IMAGE_ENCODER = re.compile(r"(^|\.)clip_model\.visual\.")
# where the older layout stored copies of the text tower (the modules that now only reference it)
_TEXT_TOWER_COPY = re.compile(r"^(module\.)?(.*\.)?text_encoder\.")
_FEW = 3  # names quoted per list in a message
ALLOW_PARTIAL_KEY = "MODEL.PIXELCLIP.ALLOW_PARTIAL_WEIGHTS"


# what a model-zoo .pkl holds: dicts / lists of numpy arrays, numbers and strings
_PLAIN_PICKLE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
    ("_codecs", "encode"),  # how protocol-2 pickles of Python 3 store bytes
}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PLAIN_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a weights file has no use for")
        return super().find_class(module, name)


def check_pickle_is_plain(filename: str) -> None:
    """Raise :class:`CheckpointError` unless ``filename`` unpickles to numpy arrays and plain
    containers only (nothing in it is called but numpy's array and dtype constructors)."""
    try:
        with open(filename, "rb") as f:
            _PlainUnpickler(f, encoding="latin1").load()
    except Exception as e:  # forbidden global, truncated or not a pickle at all
        raise CheckpointError(
            f"refusing to read {filename}: {' '.join(str(e).split())[:200]} ({type(e).__name__})",
            "a .pkl checkpoint must hold only numpy arrays (Detectron2 model-zoo format); give a .pth "
            "checkpoint, or convert the file yourself if you trust where it came from") from None


def describe_keys(keys: Sequence[str], noun: str = "keys", few: int = _FEW) -> str:
    """``"3 keys (a, b, c)"`` or ``"120 keys (a, b, c, ...)"``."""
    keys = list(keys)
    more = ", ..." if len(keys) > few else ""
    return f"{len(keys)} {noun} ({', '.join(keys[:few])}{more})"


def drop_text_tower_copies(state: Dict[str, object], model_keys) -> List[str]:
    """Remove, in place, the keys of ``state`` that copy the frozen text tower under a ``text_encoder.``
    name the model does not have (the older layout: ``text_encoder.*``, ``prompts.text_encoder.*``,
    ``classifier.text_encoder.*``, the same tensors as ``backbone.clip_model.*``). Returns them."""
    model_keys = set(model_keys)
    dropped = [k for k in state if _TEXT_TOWER_COPY.match(k) and k not in model_keys
               and (k[len("module."):] if k.startswith("module.") else k) not in model_keys]
    for k in dropped:
        del state[k]
    return dropped


def _part_of(key: str, model_params: Mapping[str, nn.Parameter]) -> Optional[str]:
    """Which required part a model key belongs to, or None for an optional one (frozen text tower,
    EMA teacher, buffers): the image encoder, or a trained part named by its top-level module."""
    if _IMAGE_ENCODER.search(key):
        return "image encoder"
    param = model_params.get(key)
    if param is not None and param.requires_grad:
        return key.split(".")[0]
    return None


def load_report(model: nn.Module, loaded_keys: Sequence[str], incompatible) -> Dict[str, object]:
    """What a load left unfilled, per part.

    Arguments:
        model: the model loaded into.
        loaded_keys: keys of the checkpoint's state dict (after D2's prefix handling).
        incompatible: ``_IncompatibleKeys`` from D2's ``_load_model``.
    Returns:
        ``{"missing": {part: [keys]}`` (required parts only), ``"optional_missing"``:
        [keys], ``"unexpected"``: [keys], ``"shapes"``: [(key, checkpoint shape, model shape)]}``.
    """
    params = dict(model.named_parameters())
    bad_shape = {k for k, _, _ in incompatible.incorrect_shapes}
    filled = set(loaded_keys) - bad_shape
    missing: Dict[str, List[str]] = defaultdict(list)
    optional: List[str] = []
    for key in incompatible.missing_keys:
        if key in filled:
            continue
        part = _part_of(key, params)
        if part is None:
            optional.append(key)
        else:
            missing[part].append(key)
    # required parts first
    shapes = sorted(((k, tuple(a), tuple(b)) for k, a, b in incompatible.incorrect_shapes),
                    key=lambda item: _part_of(item[0], params) is None)
    return {"missing": dict(missing), "optional_missing": optional,
            "unexpected": list(incompatible.unexpected_keys), "shapes": shapes}


def _layout_hint(loaded_keys: Sequence[str]) -> str:
    """Why the keys may not fit: an open_clip / OpenAI CLIP file (a CLIP_PRETRAINED, not a MODEL.WEIGHTS)."""
    keys = set(loaded_keys)
    if any(k.startswith("visual.") for k in keys) and ("token_embedding.weight" in keys or "logit_scale" in keys):
        return ("; it is a plain CLIP checkpoint (open_clip / OpenAI layout): give it as "
                "MODEL.PIXELCLIP.CLIP_PRETRAINED, with MODEL.WEIGHTS \"\"")
    return ""


class PixelCLIPCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that refuses partial loads and writes atomically (module docstring).

    Arguments:
        model, save_dir, checkpointables: as ``DetectionCheckpointer``.
        allow_partial: load files that leave required parts without weights (warn only).
    """

    def __init__(self, model: nn.Module, save_dir: str = "", *, allow_partial: bool = False, save_to_disk=None,
                 **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.allow_partial = allow_partial
        self._path: Optional[str] = None
        if self.save_dir and self.save_to_disk:  # what a killed save left (0-byte or partial temporaries)
            remove_stale_temp_files(self.save_dir)

    # ------------------------------------------------------------------ loading
    def load(self, path: str, *args, **kwargs):
        if path and "://" not in path and not os.path.isfile(path):
            raise CheckpointError(
                f"checkpoint file not found: {path} (MODEL.WEIGHTS)",
                "give the path of a PixelCLIP checkpoint, or MODEL.WEIGHTS \"\" to start from the CLIP weights alone")
        self._path = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._path = None

    def _load_file(self, filename: str):
        if filename.endswith(".pkl"):  # before D2's pickle.load runs anything
            check_pickle_is_plain(filename)
        try:
            loaded = super()._load_file(filename)
        except CheckpointError:
            raise
        except Exception as e:  # truncated zip, not a torch file, unpickling error
            raise CheckpointError(
                f"cannot read checkpoint {filename} ({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                "the file is truncated or not a PyTorch checkpoint: use another checkpoint "
                "(e.g. the previous model_*.pth) or write it again") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("model"), Mapping):
            raise CheckpointError(f"{filename} holds no model state dict", "give a Detectron2 checkpoint (.pth)")
        return loaded

    def _convert_release(self, checkpoint: dict) -> None:
        from .export import RELEASE_CLIP_PREFIX, convert_release_state_dict, to_tensors

        state = checkpoint["model"]
        if not any(str(k).startswith(RELEASE_CLIP_PREFIX) for k in state):
            return
        converted, report = convert_release_state_dict(to_tensors(state))
        for key in report.unplaced:  # reported as unexpected by the check below
            converted[key] = state[key]
        checkpoint["model"] = converted
        logger.info("%s is a checkpoint of the authors' release: converted to this project's layout "
                    "(%d keys placed, %d ignored, %d without a place; tools/export_clip.py import-release "
                    "writes the same conversion to disk)", self._path, len(report.placed), len(report.ignored),
                    len(report.unplaced))

    def _load_model(self, checkpoint):
        self._convert_release(checkpoint)
        dropped = drop_text_tower_copies(checkpoint["model"], self.model.state_dict().keys())
        if dropped:
            logger.info("%s: ignored %d copies of the text tower of the older checkpoint layout (%s...); it is "
                        "loaded from backbone.clip_model.*", self._path, len(dropped), dropped[0])
        loaded_keys = [k[len("module."):] if k.startswith("module.") else k for k in checkpoint["model"]]
        incompatible = super()._load_model(checkpoint)
        report = load_report(self.model, loaded_keys, incompatible)
        self._check(report, loaded_keys)
        return incompatible

    def _check(self, report: Dict[str, object], loaded_keys: Sequence[str]) -> None:
        missing: Dict[str, List[str]] = report["missing"]
        shapes = report["shapes"]
        if report["optional_missing"]:
            logger.warning("%s: %s of frozen or auxiliary parts are not in the file and keep their "
                           "initial values (from CLIP_PRETRAINED)", self._path,
                           describe_keys(report["optional_missing"], "tensors"))
        if not missing and not shapes:
            return
        problems = [f"{part}: no weights for {describe_keys(keys, 'tensors')}" for part, keys in missing.items()]
        if shapes:
            examples = ", ".join(f"{k} {a} vs {b}" for k, a, b in shapes[:_FEW])
            problems.append(f"{len(shapes)} tensors have another shape (checkpoint vs model: {examples})")
        if report["unexpected"]:
            problems.append(f"{describe_keys(report['unexpected'])} of the file fit nowhere")
        what = f"{self._path} does not fit this model: " + "; ".join(problems) + _layout_hint(loaded_keys)
        if self.allow_partial:
            logger.warning("%s (loaded anyway: %s is True)", what, ALLOW_PARTIAL_KEY)
            return
        raise CheckpointError(
            what, "give a PixelCLIP checkpoint made with this config's MODEL.PIXELCLIP.CLIP_MODEL_NAME (and "
            f"NUM_PROMPTS, DECODER_CHANNELS), or set {ALLOW_PARTIAL_KEY} True to load it partially on purpose")

    # ------------------------------------------------------------------ saving
    def save(self, name: str, **kwargs) -> None:
        """D2's ``Checkpointer.save``, written atomically (temp file in the same folder, fsync, rename)."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        remove_stale_temp_files(self.save_dir)
        self.logger.info("Saving checkpoint to %s", save_file)
        atomic_write(save_file, writer=lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)


def build_checkpointer(cfg, model: nn.Module, save_dir: str = "", **kwargs) -> PixelCLIPCheckpointer:
    """The checkpointer for ``model`` with ``cfg``'s ``ALLOW_PARTIAL_WEIGHTS``."""
    pixelclip = getattr(cfg.MODEL, "PIXELCLIP", None)
    allow = bool(getattr(pixelclip, "ALLOW_PARTIAL_WEIGHTS", False)) if pixelclip is not None else False
    return PixelCLIPCheckpointer(model, save_dir, allow_partial=allow, **kwargs)

