"""A disk cache of vocabulary text embeddings, so repeated evaluations do not re-encode.

Encoding a benchmark vocabulary (150 classes × 14 templates = 2100 texts through CLIP's text
tower) takes minutes on a CPU; the nine-benchmark evaluation encodes nine of them, and every run
again. :class:`TextEmbeddingCache` is the in-memory dict of :class:`~pixelclip.clip.text.
VocabularyClassifier`, backed by one small file per vocabulary. A file is keyed by a hash of

* the text tower's weights *content* and architecture (module structure, shapes, dtypes,
  activation, pooling, tokenizer and context length): a fine-tuned or another model never reads
  another's embeddings, whatever its name or file;
* the classifier's key without the device: the class names in order and the templates.

Files are written atomically (``pixelclip/utils/io.py``), so concurrent ranks and killed runs
cannot leave a partial one; a file that cannot be read is ignored and rewritten.

Where: ``$PIXELCLIP_TEXT_CACHE`` (a folder; ``off`` disables the disk cache), default
``$XDG_CACHE_HOME/pixelclip/text_embeddings`` (``~/.cache/pixelclip/text_embeddings``).
"""
import hashlib
import json
import logging
import os
from typing import Hashable, Optional, Tuple

import torch
from torch import nn

from ..utils.io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["CACHE_ENV", "TextEmbeddingCache", "default_cache_dir", "text_tower_fingerprint"]

CACHE_ENV = "PIXELCLIP_TEXT_CACHE"
_DISABLED = ("off", "0", "no", "none", "false")
_FORMAT = 1  # bump when the meaning of a cached file changes


def default_cache_dir() -> Optional[str]:
    """The cache folder from ``$PIXELCLIP_TEXT_CACHE`` (None when disabled), else under the user's cache."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in _DISABLED:
        return None
    if value:
        return os.path.expanduser(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pixelclip", "text_embeddings")


def text_tower_fingerprint(text_encoder: nn.Module) -> str:
    """Hex digest of a text encoder's architecture and weights content (every parameter and
    persistent buffer, byte for byte) and of its tokenizer's identity."""
    h = hashlib.blake2b(digest_size=20)
    tokenizer = getattr(text_encoder, "tokenizer", None)
    h.update(repr(text_encoder).encode())
    # structure repr() leaves out: attention heads (nn.MultiheadAttention prints none) and the causal mask
    h.update(json.dumps([[getattr(m, "num_heads", None) for m in text_encoder.modules()],
                         getattr(text_encoder, "causal", None)]).encode())
    h.update(json.dumps([type(tokenizer).__name__, getattr(tokenizer, "vocab_size", None),
                         getattr(text_encoder, "context_length", None), getattr(text_encoder, "pool_type", None),
                         getattr(text_encoder, "eos_token_id", None)], default=str).encode())
    for name, tensor in text_encoder.state_dict(keep_vars=False).items():
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class TextEmbeddingCache(dict):
    """The classifier's ``{key: K×C embeddings}`` dict, backed by files on disk.

    A key is the classifier's tuple (class names, templates, device string); the device is left
    out of the file's key and the tensor is moved to the encoder's device when read.

    Arguments:
        text_encoder: the text tower whose embeddings are cached (its weights define the files).
        cache_dir: folder of the files; default :func:`default_cache_dir` (None disables the disk).
    """

    def __init__(self, text_encoder: nn.Module, cache_dir: Optional[str] = "default"):
        super().__init__()
        self._encoder = text_encoder
        self.cache_dir = default_cache_dir() if cache_dir == "default" else cache_dir
        self._fingerprint: Optional[str] = None
        self._write_failed = False

    # -------------------------------------------------------------- keys and files
    def _device(self) -> str:
        return str(getattr(self._encoder, "device", "cpu"))

    def _content_key(self, key: Hashable) -> Tuple:
        device = self._device()
        parts = key if isinstance(key, tuple) else (key,)
        return tuple(p for p in parts if not (isinstance(p, str) and p == device))

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = text_tower_fingerprint(self._encoder)
        return self._fingerprint

    def path_for(self, key: Hashable) -> Optional[str]:
        """The file of ``key`` (None without a disk cache)."""
        if not self.cache_dir:
            return None
        text = json.dumps([_FORMAT, self.fingerprint(), self._content_key(key)], default=list)
        return os.path.join(self.cache_dir, hashlib.sha256(text.encode()).hexdigest()[:40] + ".pt")

    # -------------------------------------------------------------- dict interface
    def __contains__(self, key) -> bool:
        if dict.__contains__(self, key):
            return True
        path = self.path_for(key)
        if path is None or not os.path.isfile(path):
            return False
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("key") != json.loads(json.dumps(self._content_key(key), default=list)):
                raise ValueError("the file belongs to another vocabulary")
            embeddings = stored["embeddings"]
        except Exception as e:  # corrupt, another format, a hash collision: recompute
            logger.warning("ignoring text-embedding cache file %s (%s: %s)", path, type(e).__name__, e)
            return False
        dict.__setitem__(self, key, embeddings.to(getattr(self._encoder, "device", "cpu")))
        logger.info("Text embeddings of %d classes read from the cache %s", embeddings.shape[0], path)
        return True

    def __setitem__(self, key, value: torch.Tensor) -> None:
        dict.__setitem__(self, key, value)
        path = self.path_for(key)
        if path is None or self._write_failed:
            return
        data = {"key": json.loads(json.dumps(self._content_key(key), default=list)),
                "embeddings": value.detach().float().cpu().contiguous()}
        try:
            atomic_write(path, writer=lambda f: torch.save(data, f))
        except OSError as e:  # read-only or full disk: keep working from memory
            self._write_failed = True
            logger.warning("cannot write the text-embedding cache %s (%s); set %s to a writable folder or 'off'",
                           path, e, CACHE_ENV)

    def clear(self) -> None:
        """Forget the in-memory entries and the weights fingerprint (new text weights were loaded)."""
        dict.clear(self)
        self._fingerprint = None
