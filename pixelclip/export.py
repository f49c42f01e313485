"""Fine-tuned encoders out, the authors' release checkpoints in.

Out (``tools/export_clip.py``): the CLIP of a PixelCLIP checkpoint — fine-tuned image encoder
(``backbone.clip_model.visual``, or the EMA teacher ``teacher.encoder``), original text encoder — as

* an open_clip checkpoint: ``open_clip.create_model_and_transforms(name, pretrained=path)`` loads it
  strictly (what FC-CLIP's ``CLIP_MODEL_NAME`` / ``CLIP_PRETRAINED_WEIGHTS`` take);
* an OpenAI-layout ViT state dict (what OpenAI's ``clip.load(path)`` and its ``build_model`` take, and
  ZegFormer's ``CLIP_PRETRAINED`` with the change in ``projects/ZegFormer/README.md``); open_clip's ViT
  towers use OpenAI's parameter names already, and the file also holds the three scalar entries OpenAI's
  state dicts carry (``input_resolution``, ``context_length``, ``vocab_size``);
* a merge of the visual weights into another Detectron2 checkpoint under a key prefix
  (``backbone.clip_model.`` for FC-CLIP, ``sem_seg_head.predictor.clip_model.`` for ZegFormer),
  refusing missing keys and mismatched shapes, and saying which route fits a checkpoint that holds no
  CLIP at all (FC-CLIP's released checkpoints; ZegFormer's without ``CLIP_CLASSIFICATION``).

In: checkpoints of the authors' release (a Detectron2 state dict with the CLIP under
``sem_seg_head.predictor.clip_model.`` in OpenAI naming, prompts at
``sem_seg_head.predictor.prompt_tokens``, the EMA copy under ``teacher_encoder.``, the decoder under
``head.``) are mapped onto ``PixelCLIP``'s layout, reporting every key that found no place.
"""
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .errors import PixelCLIPError
from .utils.io import atomic_write

logger = logging.getLogger(__name__)

CLIP_PREFIX = "backbone.clip_model."  # PixelCLIP: the whole open_clip model
TEACHER_PREFIX = "teacher.encoder."  # PixelCLIP: EMA copy of the image tower
PROMPTS_KEY = "prompts.prompt_tokens"
DECODER_PREFIX = "decoder.layers."
RELEASE_CLIP_PREFIX = "sem_seg_head.predictor.clip_model."
RELEASE_PROMPTS_KEY = "sem_seg_head.predictor.prompt_tokens"
RELEASE_TEACHER_PREFIX = "teacher_encoder."
RELEASE_HEAD_PREFIX = "head."
MERGE_PREFIXES = {"fcclip": "backbone.clip_model.", "zegformer": "sem_seg_head.predictor.clip_model."}
# Scalar (0-dim int64) entries of OpenAI's CLIP state dicts beside the weights; OpenAI's build_model
# (and ZegFormer's copy of it) infers the sizes from the weights and deletes these three before loading.
OPENAI_SCALAR_ENTRIES = ("input_resolution", "context_length", "vocab_size")

# The release's ConvHead (conv0, up1, conv1 = DoubleConv, up2, conv2, proj) -> CostVolumeDecoder.layers
_RELEASE_HEAD_MAP = (
    (r"conv0\.", "0."), (r"up1\.", "1."),
    (r"conv1\.double_conv\.0\.", "2.0."), (r"conv1\.double_conv\.1\.", "2.1."),
    (r"conv1\.double_conv\.3\.", "3.0."), (r"conv1\.double_conv\.4\.", "3.1."),
    (r"up2\.", "4."),
    (r"conv2\.double_conv\.0\.", "5.0."), (r"conv2\.double_conv\.1\.", "5.1."),
    (r"conv2\.double_conv\.3\.", "6.0."), (r"conv2\.double_conv\.4\.", "6.1."),
    (r"proj\.", "7."),
)


class ExportError(PixelCLIPError, RuntimeError):
    """A checkpoint that cannot be exported, merged or imported; the message says why."""


# ------------------------------------------------------------------------------------ file i/o
def _to_tensors(sd: Mapping) -> Dict[str, torch.Tensor]:
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
    sd = _to_tensors(sd)
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


# ------------------------------------------------------------------------------------ CLIP out
def checkpoint_layout(sd: Mapping[str, torch.Tensor]) -> str:
    """``pixelclip`` (this project), ``release`` (the authors' release) or ``open_clip`` (a plain
    open_clip / OpenAI CLIP state dict)."""
    if any(k.startswith(CLIP_PREFIX) for k in sd):
        return "pixelclip"
    if any(k.startswith(RELEASE_CLIP_PREFIX) for k in sd):
        return "release"
    if any(k.startswith("visual.") for k in sd) and "token_embedding.weight" in sd:
        return "open_clip"
    sample = ", ".join(sorted(sd)[:5])
    raise ExportError(f"unknown checkpoint layout: no '{CLIP_PREFIX}', '{RELEASE_CLIP_PREFIX}' nor open_clip keys "
                      f"(first keys: {sample})")


def clip_state_dict(sd: Mapping[str, torch.Tensor], use_teacher: bool = False) -> Dict[str, torch.Tensor]:
    """open_clip ``CLIP`` state dict of any supported layout: the fine-tuned image tower (the student,
    or the EMA teacher with ``use_teacher``) and the (frozen, original) text tower."""
    layout = checkpoint_layout(sd)
    if layout == "open_clip":
        if use_teacher:
            raise ExportError("a plain open_clip checkpoint has no EMA teacher")
        return {k: v for k, v in sd.items() if k not in OPENAI_SCALAR_ENTRIES}
    prefix = CLIP_PREFIX if layout == "pixelclip" else RELEASE_CLIP_PREFIX
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if use_teacher:
        teacher_prefix = TEACHER_PREFIX if layout == "pixelclip" else RELEASE_TEACHER_PREFIX + "visual."
        teacher = {"visual." + k[len(teacher_prefix):]: v for k, v in sd.items() if k.startswith(teacher_prefix)}
        if not teacher:
            raise ExportError(f"the checkpoint has no EMA teacher ('{teacher_prefix}*'); was it trained with "
                              "MODEL.PIXELCLIP.USE_MOMENTUM True?")
        missing = sorted(k for k in out if k.startswith("visual.") and k not in teacher)
        if missing:
            raise ExportError(f"the teacher lacks image-encoder keys of the student, e.g. {missing[:3]}")
        out = {k: v for k, v in out.items() if not k.startswith("visual.")}
        out.update(teacher)
    return out


def build_clip_from_weights(model_name: str, weights: str = "", use_teacher: bool = False) -> Tuple[nn.Module, object]:
    """``(open_clip model, tokenizer)`` from an open_clip tag, an open_clip/OpenAI file, or a
    PixelCLIP / release Detectron2 checkpoint (its fine-tuned CLIP)."""
    from .clip.build import ClipWeightsError, build_clip_model

    if weights and os.path.isfile(weights):
        try:
            sd = load_state_dict_file(weights)
            layout = checkpoint_layout(sd)
        except ExportError as e:
            raise ClipWeightsError(str(e)) from e
        if layout == "open_clip" and not use_teacher and not any(k in sd for k in OPENAI_SCALAR_ENTRIES):
            return build_clip_model(model_name, weights)  # open_clip's own loader
        model, tokenizer = build_clip_model(model_name, "")
        try:
            model.load_state_dict(clip_state_dict(sd, use_teacher), strict=True)
        except (RuntimeError, ExportError) as e:
            raise ClipWeightsError(f"the CLIP in {weights} ({layout} layout) does not fit '{model_name}': "
                                   f"{_one_line_load_error(e)}",
                                   "give the CLIP_MODEL_NAME the checkpoint was trained with") from e
        logger.info("CLIP %s: %s weights from %s (%s layout)", model_name,
                    "EMA-teacher" if use_teacher else "fine-tuned", weights, layout)
        return model, tokenizer
    return build_clip_model(model_name, weights)


def _one_line_load_error(error: Exception) -> str:
    """torch's multi-line ``load_state_dict`` error as one line with counts and a few names."""
    from .checkpoint import describe_keys

    text = str(error)
    parts = []
    for label, pattern in (("missing", r'Missing key\(s\) in state_dict: ([^\n]*)'),
                           ("unexpected", r'Unexpected key\(s\) in state_dict: ([^\n]*)')):
        m = re.search(pattern, text)
        if m:
            keys = re.findall(r'"([^"]+)"', m.group(1))
            parts.append(f"{describe_keys(keys)} {label}")
    shapes = re.findall(r"size mismatch for ([^:]+):", text)
    if shapes:
        parts.append(f"{describe_keys(shapes, 'shapes')} differ")
    return "; ".join(parts) if parts else " ".join(text.split())[:300]


def _checked_clip(model_name: str, weights: str, use_teacher: bool) -> nn.Module:
    """The exported CLIP, loaded strictly into the named open_clip architecture (fp32)."""
    from .clip.build import build_clip_model

    sd = clip_state_dict(load_state_dict_file(weights), use_teacher)
    model, _ = build_clip_model(model_name, "")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ExportError(f"the CLIP in {weights} does not fit the open_clip architecture '{model_name}': "
                          f"{_one_line_load_error(e)}",
                          "set --model-name to the CLIP_MODEL_NAME it was trained with") from e
    return model.eval()


def export_open_clip(weights: str, model_name: str, output: str, use_teacher: bool = False) -> Dict[str, object]:
    """Write the fine-tuned CLIP as an open_clip checkpoint (fp32 state dict).

    Load it with ``open_clip.create_model_and_transforms(model_name, pretrained=output)``.
    Returns a small report (output, model name, visual source, number of tensors)."""
    model = _checked_clip(model_name, weights, use_teacher)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(sd, output)
    report = {"output": output, "model_name": model_name, "format": "open_clip",
              "visual": "teacher" if use_teacher else "student", "num_tensors": len(sd)}
    logger.info("Wrote open_clip checkpoint %s (%d tensors, %s image encoder); load it with "
                "open_clip.create_model_and_transforms('%s', pretrained='%s')",
                output, len(sd), report["visual"], model_name, output)
    return report


def openai_state_dict(model: nn.Module, fp16: bool = False) -> Dict[str, torch.Tensor]:
    """An open_clip ViT CLIP as OpenAI's state dict: the same tensors (open_clip's ViT uses OpenAI's
    parameter names: ``visual.conv1``, ``visual.transformer.resblocks.N.attn.in_proj_weight``,
    ``ln_final``, ``text_projection``, ...), ``fp16`` as OpenAI's release stores them, and, as in
    OpenAI's state dicts, three 0-dim int64 entries: ``input_resolution`` (patch size × position grid,
    e.g. 224), ``context_length`` (e.g. 77) and ``vocab_size`` (e.g. 49408). OpenAI's ``build_model``
    deletes these three before its strict load, so a file without them fails there (ZegFormer's copy:
    ``KeyError``)."""
    from .clip.build import is_vit

    if not is_vit(model.visual):
        raise ExportError(f"the OpenAI layout exists only for ViT towers, not {type(model.visual).__name__} "
                          "(use the open_clip export)")
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if fp16:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    patch, grid = sd["visual.conv1.weight"].shape[-1], round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    sd["input_resolution"] = torch.tensor(int(patch * grid))
    sd["context_length"] = torch.tensor(int(sd["positional_embedding"].shape[0]))
    sd["vocab_size"] = torch.tensor(int(sd["token_embedding.weight"].shape[0]))
    return sd


def export_openai(weights: str, model_name: str, output: str, use_teacher: bool = False, fp16: bool = False,
                  verify: bool = True) -> Dict[str, object]:
    """Write the fine-tuned CLIP ViT as an OpenAI-layout state dict (:func:`openai_state_dict`), what
    OpenAI's ``clip.load(output)`` / ``build_model`` read. With ``verify`` (and widths divisible by 64,
    the head size OpenAI's loader assumes) the file is rebuilt with open_clip's
    ``build_model_from_openai_state_dict``, which loads strictly."""
    from open_clip.model import build_model_from_openai_state_dict

    model = _checked_clip(model_name, weights, use_teacher)
    try:
        sd = openai_state_dict(model, fp16)
    except ExportError as e:
        raise ExportError(f"'{model_name}': {e}") from e
    vision_width = sd["visual.conv1.weight"].shape[0]
    text_width = sd["ln_final.weight"].shape[0]
    if verify and vision_width % 64 == 0 and text_width % 64 == 0:
        build_model_from_openai_state_dict(dict(sd), cast_dtype=None)  # raises on any missing/extra key
    elif verify:
        logger.info("skipping the OpenAI-loader check: widths %d/%d are not multiples of 64", vision_width, text_width)
    save_checkpoint(sd, output)
    report = {"output": output, "model_name": model_name, "format": "openai",
              "visual": "teacher" if use_teacher else "student", "num_tensors": len(sd), "fp16": fp16}
    logger.info("Wrote OpenAI-layout CLIP %s (%d tensors, %s; input_resolution %d, context_length %d, vocab_size %d)",
                output, len(sd), "fp16" if fp16 else "fp32", *(int(sd[k]) for k in OPENAI_SCALAR_ENTRIES))
    return report


def no_clip_in_target_message(weights: str, target: str, prefix: str, model_name: Optional[str] = None,
                               other_prefixes: Sequence[str] = ()) -> str:
    """Why a merge into ``target`` is refused when it holds no ``<prefix>visual.*`` weights, and the route
    that fits such a checkpoint instead (the framework loads its CLIP elsewhere, so there is nothing to
    replace: give it the exported CLIP the way it loads one)."""
    name = model_name or "<its CLIP_MODEL_NAME>"
    head = (f"refusing to merge {weights} into {target}: it holds no '{prefix}visual.*' weights, so there is "
            f"nothing to replace. ")
    if other_prefixes:
        return head + f"It holds image-encoder weights under {list(other_prefixes)}: give that as --prefix."
    if prefix == MERGE_PREFIXES["fcclip"]:
        return head + (
            "Released FC-CLIP checkpoints do not store the frozen CLIP: FC-CLIP builds it from "
            "MODEL.FC_CLIP.CLIP_MODEL_NAME / CLIP_PRETRAINED_WEIGHTS, and MODEL.WEIGHTS leaves it as built. For "
            f"such a checkpoint: python tools/export_clip.py open-clip --weights {weights} --model-name {name} "
            f"--output pixelclip_clip.pt, then run FC-CLIP with MODEL.FC_CLIP.CLIP_MODEL_NAME {name} "
            f"MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS pixelclip_clip.pt MODEL.WEIGHTS {target}. Merging is for "
            "FC-CLIP checkpoints that hold backbone.clip_model.* (saved by your own FC-CLIP training), whose "
            "MODEL.WEIGHTS would overwrite the CLIP that CLIP_PRETRAINED_WEIGHTS loaded.")
    if prefix == MERGE_PREFIXES["zegformer"]:
        return head + (
            "ZegFormer keeps its CLIP in checkpoints only when it runs with MODEL.SEM_SEG_HEAD.CLIP_CLASSIFICATION "
            "True; otherwise it builds the CLIP from MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED. For such a checkpoint: "
            f"python tools/export_clip.py openai --weights {weights} --model-name {name} --output "
            "pixelclip_openai.pt, then run ZegFormer with MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED pixelclip_openai.pt "
            f"MODEL.WEIGHTS {target} (its clip.load takes a file after the change in projects/ZegFormer/README.md).")
    return head + ("The framework loads its CLIP from elsewhere: give it the exported CLIP "
                   "(tools/export_clip.py open-clip or openai) the way it loads one, with this checkpoint as is.")


@dataclass
class MergeReport:
    """Keys a merge replaced, in the target's naming."""

    output: str
    prefix: str
    replaced: List[str] = field(default_factory=list)


def merge_visual_weights(weights: str, target: str, prefix: str, output: str, model_name: Optional[str] = None,
                         use_teacher: bool = False) -> MergeReport:
    """Replace the image-encoder weights inside another Detectron2 checkpoint.

    Every ``visual.*`` tensor of the fine-tuned CLIP goes to ``<prefix>visual.*`` of ``target``
    (keeping the target's dtype); every other entry of ``target`` (its text tower, heads, trainer
    state) is written back unchanged.

    Arguments:
        weights: a PixelCLIP (or release / open_clip) checkpoint.
        target: the checkpoint to merge into (e.g. FC-CLIP's or ZegFormer's ``model_final.pth``).
        prefix: where the CLIP lives in ``target`` (``backbone.clip_model.``,
            ``sem_seg_head.predictor.clip_model.``, or a key of :data:`MERGE_PREFIXES`).
        output: the merged checkpoint (same container format as ``target``).
        model_name: when given, the CLIP is first loaded strictly into this open_clip architecture.
    Raises:
        ExportError: the target holds no ``<prefix>visual.*`` at all (the message names the route that
            fits it: :func:`no_clip_in_target_message`), a visual key absent from the target, a target
            visual key we do not provide, or a shape mismatch (nothing is written then).
    """
    prefix = MERGE_PREFIXES.get(prefix, prefix)
    if prefix and not prefix.endswith("."):
        prefix += "."
    container = read_checkpoint(target)
    if isinstance(container, Mapping) and isinstance(container.get("model"), Mapping):
        target_sd = container["model"]
    elif isinstance(container, Mapping):
        target_sd = container
    else:
        raise ExportError(f"{target} does not hold a state dict")
    if not any(str(k).startswith(prefix + "visual.") for k in target_sd):
        others = sorted({k[:k.index("visual.")] for k in map(str, target_sd)
                         if re.search(r"(^|\.)visual\.(conv1|trunk)\.", k)})
        raise ExportError(no_clip_in_target_message(weights, target, prefix, model_name, others))
    if model_name:
        source = {k: v for k, v in _checked_clip(model_name, weights, use_teacher).state_dict().items()}
    else:
        source = clip_state_dict(load_state_dict_file(weights), use_teacher)
    visual = {k: v for k, v in source.items() if k.startswith("visual.")}
    if not visual:
        raise ExportError(f"{weights} holds no image-encoder ('visual.*') weights")
    absent = sorted(prefix + k for k in visual if prefix + k not in target_sd)
    mismatched = [f"{prefix + k}: ours {tuple(v.shape)} vs target {tuple(np.shape(target_sd[prefix + k]))}"
                  for k, v in sorted(visual.items())
                  if prefix + k in target_sd and tuple(v.shape) != tuple(np.shape(target_sd[prefix + k]))]
    untouched = sorted(k for k in target_sd if k.startswith(prefix + "visual.") and k[len(prefix):] not in visual)
    problems = []
    if absent:
        problems.append(f"{len(absent)} image-encoder keys are not in the target (wrong prefix or architecture?), "
                        f"e.g. {absent[:3]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shapes differ, e.g. {mismatched[:3]}")
    if untouched:
        problems.append(f"{len(untouched)} target image-encoder keys have no counterpart, e.g. {untouched[:3]}")
    if problems:
        raise ExportError(f"refusing to merge {weights} into {target} under '{prefix}': " + "; ".join(problems))
    report = MergeReport(output=output, prefix=prefix)
    for k, v in sorted(visual.items()):
        key = prefix + k
        old = target_sd[key]
        if isinstance(old, np.ndarray):
            target_sd[key] = v.detach().cpu().numpy().astype(old.dtype)
        else:
            target_sd[key] = v.detach().to(dtype=old.dtype).clone()
        report.replaced.append(key)
    save_checkpoint(container, output, as_pickle=target.endswith(".pkl"))
    for key in report.replaced:
        logger.info("replaced %s", key)
    logger.info("Merged %d image-encoder tensors into %s under '%s' -> %s", len(report.replaced), target, prefix, output)
    return report


# ------------------------------------------------------------------------------------ release in
@dataclass
class ImportReport:
    """Where each key of a release checkpoint went."""

    placed: Dict[str, str] = field(default_factory=dict)  # release key -> our key
    ignored: Dict[str, str] = field(default_factory=dict)  # release key -> why it is not needed
    unplaced: List[str] = field(default_factory=list)  # release keys with no place in our model
    missing: List[str] = field(default_factory=list)  # our keys the release did not fill


def _release_head_key(rest: str) -> Optional[str]:
    for pattern, target in _RELEASE_HEAD_MAP:
        m = re.match(pattern, rest)
        if m:
            return DECODER_PREFIX + target + rest[m.end():]
    return None


def convert_release_state_dict(release: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], ImportReport]:
    """Map a release state dict onto ``PixelCLIP``'s key layout (names only; see
    :func:`load_release_checkpoint` for the check against a model)."""
    out: Dict[str, torch.Tensor] = {}
    report = ImportReport()
    for key, value in release.items():
        ours = None
        if key.startswith(RELEASE_CLIP_PREFIX):
            ours = CLIP_PREFIX + key[len(RELEASE_CLIP_PREFIX):]
        elif key == RELEASE_PROMPTS_KEY:
            ours = PROMPTS_KEY
        elif key.startswith(RELEASE_TEACHER_PREFIX + "visual."):
            ours = TEACHER_PREFIX + key[len(RELEASE_TEACHER_PREFIX + "visual."):]
        elif key.startswith(RELEASE_TEACHER_PREFIX):
            report.ignored[key] = "text-tower copy in the release's teacher (the teacher is an image encoder here)"
        elif key.startswith(RELEASE_HEAD_PREFIX):
            ours = _release_head_key(key[len(RELEASE_HEAD_PREFIX):])
        if ours is not None:
            out[ours] = value
            report.placed[key] = ours
        elif key not in report.ignored:
            report.unplaced.append(key)
    return out, report


def load_release_checkpoint(model: nn.Module, checkpoint) -> ImportReport:
    """Load a release checkpoint (path or state dict) into a ``PixelCLIP`` model.

    Every release key goes to its place or is listed (``unplaced`` / ``ignored``); our keys left
    unfilled are listed in ``missing``. Shapes must match.

    Raises:
        ExportError: shape mismatches, or image-encoder keys of ours that the release lacks.
    """
    release = load_state_dict_file(checkpoint) if isinstance(checkpoint, str) else _to_tensors(checkpoint)
    converted, report = convert_release_state_dict(release)
    ours = model.state_dict()
    mismatched = [f"{k}: release {tuple(v.shape)} vs ours {tuple(ours[k].shape)}"
                  for k, v in converted.items() if k in ours and tuple(v.shape) != tuple(ours[k].shape)]
    if mismatched:
        raise ExportError("release checkpoint does not fit this model (check CLIP_MODEL_NAME, NUM_PROMPTS, "
                          f"PROMPT_LENGTH): {mismatched[:5]}")
    source_of = {o: r for r, o in report.placed.items()}
    for k in sorted(k for k in converted if k not in ours):  # e.g. a teacher in the release, USE_MOMENTUM False here
        release_key = source_of.get(k, k)
        report.placed.pop(release_key, None)
        report.unplaced.append(release_key)
        converted.pop(k)
    report.missing = sorted(k for k in ours if k not in converted)
    visual_missing = [k for k in report.missing if k.startswith(CLIP_PREFIX + "visual.")]
    if visual_missing:
        raise ExportError(f"the release checkpoint lacks {len(visual_missing)} image-encoder keys, "
                          f"e.g. {visual_missing[:3]}")
    model.load_state_dict(converted, strict=False)
    for key in report.unplaced:
        logger.warning("release key with no place in this model: %s", key)
    logger.info("Imported release checkpoint: %d keys placed, %d ignored, %d unplaced, %d of ours not in it",
                len(report.placed), len(report.ignored), len(report.unplaced), len(report.missing))
    return report
