"""Build an open_clip model and its tokenizer, and choose which image-encoder weights train.

Weights come from one of three places:
  * an open_clip pretrained tag (``ViT-B-16`` + ``openai``, ``convnext_base_w_320`` +
    ``laion_aesthetic_s13b_b82k``, ...): read from open_clip's cache, downloaded if absent and the
    network answers (``pixelclip/clip/weights.py`` decides without waiting on it);
  * a local checkpoint file (any state dict open_clip's ``load_checkpoint`` reads);
  * nothing (``""``): random initialisation, for tiny test configs and pre-training.
"""
import logging
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import open_clip
from torch import nn

from . import MODEL_CONFIG_DIR  # noqa: F401  (registers pixelclip/clip/model_configs with open_clip)
from .weights import ClipWeightsError, how_to_provide, locate_clip_weights

__all__ = ["ClipWeightsError", "build_clip_model", "weights_loaded_next", "apply_finetune_policy", "freeze", "is_vit",
           "is_convnext"]

logger = logging.getLogger(__name__)

CLIP_FINETUNE_POLICIES = ("attention", "full", "conv", "prompt", "none")
_LOADED_NEXT: List[str] = []  # sources of the blocks of weights_loaded_next, innermost last


class _NoRandomInitWarning(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded ... Model initialized randomly." (root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextmanager
def weights_loaded_next(source: str) -> Iterator[None]:
    """Within the block, a CLIP built with ``pretrained=""`` is a skeleton whose weights the caller
    loads from ``source`` right after (and logs how many): it is logged as such, not as a random
    initialisation, and open_clip's "Model initialized randomly" warning is dropped."""
    quiet = _NoRandomInitWarning()
    _LOADED_NEXT.append(source)
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)
        _LOADED_NEXT.pop()


def build_clip_model(model_name: str, pretrained: str = "", cache_dir: str = None) -> Tuple[nn.Module, object]:
    """Create ``(model, tokenizer)``.

    Arguments:
        model_name: an open_clip architecture, e.g. ``ViT-B-16``, ``convnext_base_w_320``, or one of
            ``pixelclip/clip/model_configs`` (``PixelCLIP-Tiny-ViT``, ...).
        pretrained: an open_clip pretrained tag, a local checkpoint path, or ``""`` for random weights.
        cache_dir: where open_clip caches downloaded weights (default: its own).
    Returns:
        the open_clip ``CLIP`` model (fp32, on CPU) and its tokenizer.
    Raises:
        ClipWeightsError: unknown architecture or tag, missing or unreadable checkpoint file, weights
            neither cached nor downloadable (said at once, see :func:`locate_clip_weights`), failed download.
    """
    weights = locate_clip_weights(model_name, pretrained, cache_dir)
    if weights.source == "random" and _LOADED_NEXT:
        logger.info("CLIP %s: built without weights; they are loaded from %s next", model_name, _LOADED_NEXT[-1])
        model = open_clip.create_model(model_name, pretrained=None)
    elif weights.source == "random":
        logger.info("CLIP %s: random initialisation (no pretrained weights asked for)", model_name)
        model = open_clip.create_model(model_name, pretrained=None)
    elif weights.path is not None:  # a local file, or a tag's file in the cache: no network
        try:
            model = open_clip.create_model(model_name, pretrained=weights.path)
        except Exception as e:  # corrupt file, wrong architecture, ...
            raise ClipWeightsError(
                f"could not load CLIP checkpoint {weights.path} into '{model_name}' ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:300]})",
                "check that MODEL.PIXELCLIP.CLIP_MODEL_NAME is the architecture the file was trained with") from e
        logger.info("CLIP %s: weights '%s' from %s", model_name, pretrained, weights.path)
    else:
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir)
        except Exception as e:
            raise ClipWeightsError(
                f"CLIP weights '{model_name}' / '{pretrained}' are not in open_clip's cache and could not be "
                f"downloaded ({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                how_to_provide(model_name, pretrained)) from e
        logger.info("CLIP %s: pretrained weights '%s' (downloaded)", model_name, pretrained)
    if not hasattr(model, "token_embedding"):
        raise ClipWeightsError(
            f"CLIP '{model_name}' has a custom text tower ({type(model).__name__})",
            "PixelCLIP drives the standard open_clip text transformer (token_embedding, transformer, "
            "ln_final, text_projection): choose an architecture that has it")
    return model.float(), open_clip.get_tokenizer(model_name)


def is_vit(visual: nn.Module) -> bool:
    """True for open_clip's ``VisionTransformer`` image towers."""
    return hasattr(visual, "conv1") and hasattr(visual, "transformer")


def is_convnext(visual: nn.Module) -> bool:
    """True for open_clip's timm-backed ConvNeXt image towers."""
    return hasattr(visual, "trunk") and hasattr(visual.trunk, "stages")


def blocks_batch_first(transformer: nn.Module) -> bool:
    """Whether the residual blocks of an open_clip ``Transformer`` take N×L×D (else L×N×D).

    open_clip 2.26 to 3.x record it in ``transformer.batch_first`` (their ``forward`` takes N×L×D
    either way and transposes around the blocks itself). Older releases have no such attribute: their
    blocks use ``nn.MultiheadAttention``'s sequence-first default (and ``forward`` takes L×N×D, which is
    why FC-CLIP's ``encode_text`` permutes). Later ones without ``nn.MultiheadAttention`` are batch-first.
    Callers that run the blocks themselves transpose by this, and are then right for every version.
    """
    if hasattr(transformer, "batch_first"):
        return bool(transformer.batch_first)
    attn = getattr(transformer.resblocks[0], "attn", None)
    return not isinstance(attn, nn.MultiheadAttention) or bool(attn.batch_first)


def _trainable(name: str, policy: str) -> bool:
    if policy == "full":
        return True
    if policy == "attention":  # the release: attention weights and position embeddings
        return "attn" in name or "position" in name
    if policy == "conv":
        return "conv" in name
    return False  # "prompt" and "none": the image encoder stays frozen


def apply_finetune_policy(visual: nn.Module, policy: str) -> List[str]:
    """Set ``requires_grad`` of the image encoder by ``CLIP_FINETUNE`` and return the trainable names.

    ``attention``: parameters whose names hold ``attn`` or ``position``; ``full``: all; ``conv``: those
    holding ``conv``; ``prompt`` and ``none``: none (``prompt`` trains only the class prompts and the
    decoder; ``none`` is the same for the image encoder, with prompts governed by ``LEARN_PROMPTS``).
    """
    if policy not in CLIP_FINETUNE_POLICIES:
        raise ValueError(f"MODEL.PIXELCLIP.CLIP_FINETUNE must be one of {CLIP_FINETUNE_POLICIES}, got '{policy}'")
    names = []
    for name, param in visual.named_parameters():
        param.requires_grad_(_trainable(name, policy))
        if param.requires_grad:
            names.append(name)
    if policy in ("attention", "conv") and not names:
        logger.warning("CLIP_FINETUNE=%s matches no image-encoder parameter of %s", policy, type(visual).__name__)
    return names


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients of every parameter of ``module`` and return it."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module
