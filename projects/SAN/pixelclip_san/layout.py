"""Where SAN keeps the CLIP, and the key map from an open_clip ``CLIP`` state dict into it.

SAN (Xu et al., CVPR 2023; MendelXu/SAN, ``san/model/san.py``) builds one open_clip ViT CLIP and splits
its image tower by block index ``K = MODEL.SAN.FEATURE_LAST_LAYER_IDX`` (9 for ViT-B/16, 18 for
ViT-L/14@336) into two modules that share no tensor:

* ``clip_visual_extractor`` (``FeatureExtractor``): ``conv1``, ``class_embedding``,
  ``positional_embedding``, ``ln_pre`` and blocks ``0 .. K-1`` as ``resblocks.0 .. K-1``;
* ``clip_rec_head`` (``RecWithAttnbiasHead``): blocks ``K .. L-1`` renumbered ``resblocks.0 .. L-K-1``,
  ``ln_post`` and ``proj``.

The text tower sits under ``ov_classifier.`` with open_clip's names (``transformer.*``,
``token_embedding.weight``, ``positional_embedding``, ``ln_final.*``, ``text_projection``, ``logit_scale``),
beside SAN's own ``ov_classifier.bg_embed`` and a persisted copy of the causal ``attn_mask`` buffer.
SAN trains exactly one CLIP tensor: ``clip_visual_extractor.positional_embedding``
(``MODEL.SAN.CLIP_FROZEN_EXCLUDE: ["positional_embedding"]``, its default); everything else of the CLIP
is frozen.
"""
import re
from typing import Dict, Iterable, Mapping, Optional, Tuple

from .errors import SanWeightsError

EXTRACTOR = "clip_visual_extractor."
REC_HEAD = "clip_rec_head."
TEXT = "ov_classifier."
SAN_POSITIONAL = EXTRACTOR + "positional_embedding"
# Entries of SAN's ov_classifier that are not CLIP weights: the learned background embedding and the
# causal mask buffer (open_clip keeps it out of its own state dict; SAN's re-registration persists it).
SAN_TEXT_EXTRAS = (TEXT + "bg_embed", TEXT + "attn_mask")

_STEM_TENSORS = ("class_embedding", "positional_embedding")
_STEM_MODULES = ("conv1.", "ln_pre.")
_BLOCK = re.compile(r"^visual\.transformer\.resblocks\.(\d+)\.(.+)$")
_SAN_BLOCK = re.compile(r"^(clip_visual_extractor|clip_rec_head)\.resblocks\.(\d+)\.")


def san_block_counts(san_keys: Iterable[str]) -> Tuple[int, int]:
    """``(K, R)``: the number of CLIP blocks in ``clip_visual_extractor`` and in ``clip_rec_head`` of a
    SAN state dict (``K`` is SAN's ``FEATURE_LAST_LAYER_IDX``; ``K + R`` the CLIP's depth)."""
    top = {"clip_visual_extractor": -1, "clip_rec_head": -1}
    for key in san_keys:
        m = _SAN_BLOCK.match(key)
        if m:
            top[m.group(1)] = max(top[m.group(1)], int(m.group(2)))
    return top["clip_visual_extractor"] + 1, top["clip_rec_head"] + 1


def clip_depth(clip_keys: Iterable[str]) -> int:
    """The number of image-tower blocks of an open_clip ``CLIP`` state dict (``visual.transformer.resblocks.N``)."""
    indices = [int(m.group(1)) for m in map(_BLOCK.match, clip_keys) if m]
    return max(indices) + 1 if indices else 0


def san_visual_key(clip_key: str, first_rec_layer: int) -> Optional[str]:
    """SAN's name for one open_clip image-tower key, or ``None`` when SAN has no place for it.

    ``visual.conv1.weight`` -> ``clip_visual_extractor.conv1.weight``;
    ``visual.transformer.resblocks.i.X`` -> ``clip_visual_extractor.resblocks.i.X`` (i < K) or
    ``clip_rec_head.resblocks.{i-K}.X`` (i >= K); ``visual.ln_post.*`` / ``visual.proj`` ->
    ``clip_rec_head.*``.
    """
    if not clip_key.startswith("visual."):
        return None
    m = _BLOCK.match(clip_key)
    if m:
        index, rest = int(m.group(1)), m.group(2)
        if index < first_rec_layer:
            return f"{EXTRACTOR}resblocks.{index}.{rest}"
        return f"{REC_HEAD}resblocks.{index - first_rec_layer}.{rest}"
    rest = clip_key[len("visual."):]
    if rest in _STEM_TENSORS or rest.startswith(_STEM_MODULES):
        return EXTRACTOR + rest
    if rest == "proj" or rest.startswith("ln_post."):
        return REC_HEAD + rest
    return None


def remap_visual(clip_sd: Mapping[str, object], first_rec_layer: int) -> Dict[str, object]:
    """Every ``visual.*`` tensor of an open_clip ``CLIP`` state dict under its SAN name
    (:func:`san_visual_key`). Raises :class:`SanWeightsError` for image-tower keys SAN has no place for
    (a ConvNeXt or timm trunk, an attention-pooling head: SAN takes open_clip ViTs only) and when
    ``first_rec_layer`` is not inside the tower."""
    depth = clip_depth(clip_sd)
    if depth == 0:
        raise SanWeightsError("the CLIP state dict has no 'visual.transformer.resblocks.*' (not an open_clip ViT)",
                              "SAN takes open_clip ViT CLIPs (ViT-B/16, ViT-L/14@336)")
    if not 0 < first_rec_layer < depth:
        raise SanWeightsError(f"SAN's split index {first_rec_layer} is outside the CLIP's {depth} blocks",
                              "the SAN checkpoint and the CLIP are different architectures")
    out, homeless = {}, []
    for key, value in clip_sd.items():
        if not key.startswith("visual."):
            continue
        target = san_visual_key(key, first_rec_layer)
        if target is None:
            homeless.append(key)
        else:
            out[target] = value
    if homeless:
        raise SanWeightsError(f"{len(homeless)} image-encoder keys have no place in SAN, e.g. {sorted(homeless)[:3]}",
                              "SAN takes plain open_clip ViT towers (no attention pooling, no timm/ConvNeXt trunk)")
    return out


def remap_text(clip_sd: Mapping[str, object]) -> Dict[str, object]:
    """The text-tower tensors of an open_clip ``CLIP`` state dict under SAN's ``ov_classifier.`` prefix."""
    return {TEXT + k: v for k, v in clip_sd.items() if not k.startswith("visual.") and k != "attn_mask"}
