"""Where CAT-Seg keeps its CLIP and how it names it (cvlab-kaist/CAT-Seg, commit 6d3a188, read on that commit).

CAT-Seg (Cho et al., CVPR 2024) builds an OpenAI-layout CLIP by name in ``CATSegPredictor``:
``clip.load(MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED, jit=False)`` with its vendored ``third_party/model_vpt.py``,
whose ``Attention`` (an ``nn.MultiheadAttention``) stores the packed input projection split in three:

    <block>.attn.q_proj_weight   D×D  = in_proj_weight[0:D]
    <block>.attn.k_proj_weight   D×D  = in_proj_weight[D:2D]
    <block>.attn.v_proj_weight   D×D  = in_proj_weight[2D:3D]
    <block>.attn.in_proj_bias    3D   (kept packed)
    <block>.attn.out_proj.{weight,bias}

in both towers (``visual.transformer.resblocks.N`` and the text tower's ``transformer.resblocks.N``); every
other name is OpenAI's (= open_clip's ViT names). The CLIP lives at ``sem_seg_head.predictor.clip_model``
of the ``CATSeg`` meta-architecture, and Detectron2 loads ``MODEL.WEIGHTS`` over it non-strictly.

``CATSeg`` compares ``CLIP_PRETRAINED`` with the literal ``"ViT-B/16"`` three times (``cat_seg_model.py``):
CLIP input 384×384 else 336×336, up-sampling convolutions for 768 else 1024 channels, and the blocks whose
outputs it hooks as guidance features, ``[3, 7]`` else ``[7, 15]``; ``CATSegPredictor`` sends ``"ViT-H"`` /
``"ViT-G"`` to open_clip instead. :data:`CATSEG_CLIPS` is that table.

Pure torch: importing this registers nothing, so it can run inside CAT-Seg's own process.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import torch

CATSEG_CLIP_PREFIX = "sem_seg_head.predictor.clip_model."
PACKED = "attn.in_proj_weight"
SPLIT = ("attn.q_proj_weight", "attn.k_proj_weight", "attn.v_proj_weight")


class CATSegLayoutError(ValueError):
    """A state dict that cannot be put into (or taken out of) CAT-Seg's layout."""


@dataclass(frozen=True)
class CATSegCLIP:
    """One value of CAT-Seg's ``MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED`` and what CAT-Seg does with it.

    Attributes:
        name: the string CAT-Seg compares (``clip.load`` name).
        open_clip_name: PixelCLIP's ``CLIP_MODEL_NAME`` with the same architecture and activation.
        width, layers, patch: the image tower (OpenAI's ViT sizes).
        positions: rows of ``visual.positional_embedding`` in the CLIP CAT-Seg builds (1 + grid²).
        clip_resolution: side of the square CAT-Seg resizes every image (or window) to.
        guidance_blocks: blocks whose outputs CAT-Seg hooks (``layer_indexes``).
        pixelclip_config: the PixelCLIP config whose encoder fits.
    """

    name: str
    open_clip_name: str
    width: int
    layers: int
    patch: int
    positions: int
    clip_resolution: int
    guidance_blocks: Tuple[int, int]
    pixelclip_config: str


CATSEG_CLIPS: Dict[str, CATSegCLIP] = {
    c.name: c for c in (
        CATSegCLIP("ViT-B/16", "ViT-B-16-quickgelu", 768, 12, 16, 197, 384, (3, 7), "configs/pixelclip_vitb.yaml"),
        CATSegCLIP("ViT-L/14@336px", "ViT-L-14-336-quickgelu", 1024, 24, 14, 577, 336, (7, 15),
                   "projects/CAT-Seg/configs/pixelclip_vitl_336.yaml"),
        # not in CAT-Seg's configs, but its code runs it: the "else" branch (336 px, [7, 15], 1024 channels),
        # position embeddings resized 16x16 -> 24x24 on the fly by its dense path
        CATSegCLIP("ViT-L/14", "ViT-L-14-quickgelu", 1024, 24, 14, 257, 336, (7, 15), "configs/pixelclip_vitl.yaml"),
    )
}


def catseg_clip(name: str) -> CATSegCLIP:
    """The :class:`CATSegCLIP` of a ``CLIP_PRETRAINED`` value; a clear error for any other string."""
    if name not in CATSEG_CLIPS:
        raise CATSegLayoutError(
            f"CAT-Seg CLIP_PRETRAINED {name!r} is not one this export supports ({sorted(CATSEG_CLIPS)}); 'ViT-H' / "
            "'ViT-G' build open_clip LAION models, which PixelCLIP does not fine-tune")
    return CATSEG_CLIPS[name]


def split_attention(sd: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """open_clip / OpenAI layout -> CAT-Seg's: every ``*.attn.in_proj_weight`` (3D×D) becomes
    ``*.attn.{q,k,v}_proj_weight`` (D×D each, rows [0:D], [D:2D], [2D:3D]: ``nn.MultiheadAttention``'s
    packing order); every other entry, ``in_proj_bias`` included, is kept. Order: as in ``sd``."""
    out = OrderedDict()
    for key, value in sd.items():
        if key.endswith(PACKED):
            if value.dim() != 2 or value.shape[0] != 3 * value.shape[1]:
                raise CATSegLayoutError(f"{key} has shape {tuple(value.shape)}; a packed q/k/v projection is 3D×D")
            stem = key[: -len(PACKED)]
            for name, part in zip(SPLIT, value.chunk(3, dim=0)):
                out[stem + name] = part.clone()
        else:
            out[key] = value
    return out


def merge_attention(sd: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """CAT-Seg's layout -> open_clip / OpenAI: ``*.attn.{q,k,v}_proj_weight`` concatenated (in that
    order) into ``*.attn.in_proj_weight``; the inverse of :func:`split_attention`."""
    out = OrderedDict()
    for key, value in sd.items():
        if key.endswith(SPLIT[0]):
            stem = key[: -len(SPLIT[0])]
            parts = [sd.get(stem + name) for name in SPLIT]
            absent = [stem + name for name, p in zip(SPLIT, parts) if p is None]
            if absent:
                raise CATSegLayoutError(f"{key} has no partner {absent}: q, k and v projections come in threes")
            out[stem + PACKED] = torch.cat(parts, dim=0)
        elif key.endswith(SPLIT[1]) or key.endswith(SPLIT[2]):
            stem = key[: -len(SPLIT[1])]
            if stem + SPLIT[0] not in sd:
                raise CATSegLayoutError(f"{key} has no partner {stem + SPLIT[0]}: q, k and v projections come in threes")
        else:
            out[key] = value
    return out


def add_prefix(sd: Mapping[str, torch.Tensor], prefix: str = CATSEG_CLIP_PREFIX) -> "OrderedDict[str, torch.Tensor]":
    return OrderedDict((prefix + k, v) for k, v in sd.items())


def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str = CATSEG_CLIP_PREFIX) -> "OrderedDict[str, torch.Tensor]":
    """The entries under ``prefix``, without it (DDP's ``module.`` in front is tolerated)."""
    out = OrderedDict()
    for key, value in sd.items():
        key = key[len("module."):] if key.startswith("module." + prefix) else key
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
    return out


def vit_sizes(sd: Mapping[str, torch.Tensor]) -> Dict[str, int]:
    """Image-tower sizes of a CLIP state dict in either layout (no prefix): width, layers, patch, positions."""
    try:
        conv = sd["visual.conv1.weight"]
        positions = sd["visual.positional_embedding"].shape[0]
    except KeyError as e:
        raise CATSegLayoutError(f"not a CLIP ViT state dict: no {e.args[0]!r}") from None
    blocks = {k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")}
    return {"width": conv.shape[0], "layers": len(blocks), "patch": conv.shape[-1], "positions": positions}


def fit_problems(sd: Mapping[str, torch.Tensor], clip: CATSegCLIP) -> Optional[str]:
    """Why an open_clip-layout CLIP does not fit the CLIP CAT-Seg builds for ``clip.name`` (None: it fits)."""
    sizes = vit_sizes(sd)
    wanted = {"width": clip.width, "layers": clip.layers, "patch": clip.patch, "positions": clip.positions}
    wrong = [f"{k} {sizes[k]} (CAT-Seg's {clip.name}: {v})" for k, v in wanted.items() if sizes[k] != v]
    return "; ".join(wrong) or None
