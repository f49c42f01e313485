"""Where CLIP weights come from, found without building a model and without waiting on the network.

``MODEL.PIXELCLIP.CLIP_PRETRAINED`` is a local checkpoint file or an open_clip pretrained tag. A tag
names a file on the Hugging Face Hub (``hf_hub`` in open_clip's pretrained config) or at a URL
(``url``); open_clip keeps downloads in the Hub cache (``$HF_HUB_CACHE``, ``~/.cache/huggingface``)
or in ``~/.cache/clip``. :func:`locate_clip_weights` answers from the file system alone: the local
file, the cached file, or "not here". When a tag's file is not cached and the network cannot be
used (``HF_HUB_OFFLINE=1``, or the host does not answer within a few seconds), it raises
:class:`ClipWeightsError` at once instead of letting a download retry for a minute.
"""
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple
from urllib.parse import urlparse

import open_clip

from ..errors import PixelCLIPError

logger = logging.getLogger(__name__)

__all__ = ["ClipWeightsError", "ClipWeights", "locate_clip_weights", "looks_like_path"]

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".pkl")
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip's default file in a Hub repository
_PROBE_TIMEOUT_S = 3.0


class ClipWeightsError(PixelCLIPError, RuntimeError):
    """The CLIP weights that were asked for cannot be found or read."""


@dataclass
class ClipWeights:
    """Resolved CLIP weights: ``path`` is a local file (None for random initialisation, or for a
    tag whose file is not cached but can be downloaded); ``source`` says where it came from."""

    model_name: str
    pretrained: str
    path: Optional[str]
    source: str  # "random", "file", "cache", "download"


def looks_like_path(pretrained: str) -> bool:
    """True when ``CLIP_PRETRAINED`` names a file rather than an open_clip tag."""
    return os.sep in pretrained or pretrained.endswith(_CHECKPOINT_SUFFIXES) or os.path.exists(pretrained)


def how_to_provide(model_name: str, pretrained: str) -> str:
    """The action part of a missing-weights message."""
    return (
        f"on a machine with internet run `python -c \"import open_clip; open_clip.create_model('{model_name}', "
        f"pretrained='{pretrained}')\"` and copy its cache (~/.cache/huggingface) here, or download the "
        "checkpoint file and set MODEL.PIXELCLIP.CLIP_PRETRAINED to its local path"
    )


def _hub_candidates(hf_hub: str) -> Iterator[Tuple[str, str]]:
    """(repo id, file name) pairs open_clip may load for an ``hf_hub`` entry, safetensors first
    (``open_clip.pretrained.download_pretrained_from_hf``)."""
    repo_id, filename = os.path.split(hf_hub)  # "org/repo/" names the repository's default file
    filename = filename or _HF_WEIGHTS_NAME
    if filename == _HF_WEIGHTS_NAME:
        yield repo_id, "open_clip_model.safetensors"
    elif filename.endswith((".bin", ".pth")):
        yield repo_id, filename[:-4] + ".safetensors"
    yield repo_id, filename


def _cached_hub_file(hf_hub: str, cache_dir: Optional[str]) -> Optional[str]:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for repo_id, filename in _hub_candidates(hf_hub):
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _cached_url_file(url: str, cache_dir: Optional[str]) -> Optional[str]:
    folder = cache_dir or os.path.expanduser("~/.cache/clip")  # open_clip.pretrained.download_pretrained_from_url
    path = os.path.join(folder, os.path.basename(urlparse(url).path))
    return path if os.path.isfile(path) else None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def network_reachable(host: str, port: int = 443, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """One TCP connection attempt (no retries): can ``host`` be reached now?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def locate_clip_weights(model_name: str, pretrained: str, cache_dir: Optional[str] = None) -> ClipWeights:
    """Resolve ``(CLIP_MODEL_NAME, CLIP_PRETRAINED)`` from the file system, without building a model.

    Arguments:
        model_name: an open_clip architecture (``open_clip.list_models()``, with this package's configs).
        pretrained: ``""`` (random weights), a local checkpoint file, or an open_clip pretrained tag.
        cache_dir: open_clip's ``cache_dir`` (default: the Hub cache and ``~/.cache/clip``).
    Returns:
        :class:`ClipWeights`; ``source == "download"`` when a tag's file is not cached and the
        network can be used (open_clip will download it).
    Raises:
        ClipWeightsError: unknown architecture or tag; a missing file; a tag whose file is not
            cached while offline or with the download host unreachable.
    """
    if model_name not in open_clip.list_models():
        raise ClipWeightsError(
            f"Unknown CLIP architecture '{model_name}' (MODEL.PIXELCLIP.CLIP_MODEL_NAME)",
            "use a name from open_clip.list_models() or a JSON file in pixelclip/clip/model_configs/")
    if not pretrained:
        return ClipWeights(model_name, pretrained, None, "random")
    if looks_like_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ClipWeightsError(
                f"CLIP checkpoint file not found: {path} (MODEL.PIXELCLIP.CLIP_PRETRAINED)",
                f"give the path of an open_clip/OpenAI state dict for '{model_name}', or an open_clip pretrained tag")
        return ClipWeights(model_name, pretrained, str(path), "file")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise ClipWeightsError(
            f"Unknown pretrained tag '{pretrained}' for CLIP '{model_name}' (MODEL.PIXELCLIP.CLIP_PRETRAINED)",
            f"open_clip knows {tags or 'no tag for this architecture'}; or give a local checkpoint path")
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if cfg.get("file"):
        return ClipWeights(model_name, pretrained, cfg["file"], "file")
    hf_hub, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    cached = (hf_hub and _cached_hub_file(hf_hub, cache_dir)) or (url and _cached_url_file(url, cache_dir))
    if cached:
        return ClipWeights(model_name, pretrained, cached, "cache")
    where = f"the Hugging Face Hub repository {hf_hub.rstrip('/')}" if hf_hub else url
    if _offline():
        reason = "HF_HUB_OFFLINE is set"
    else:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co") if hf_hub else url
        host = urlparse(endpoint).hostname
        if network_reachable(host):
            return ClipWeights(model_name, pretrained, None, "download")
        reason = f"{host} cannot be reached"
    raise ClipWeightsError(
        f"CLIP weights '{model_name}' / '{pretrained}' are not in the local cache and cannot be downloaded "
        f"from {where} ({reason})", how_to_provide(model_name, pretrained))
