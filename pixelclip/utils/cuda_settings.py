"""Process-wide CUDA speed settings of a run (the release's): TF32 matmuls and convolutions.

``cudnn.benchmark`` is Detectron2's ``CUDNN_BENCHMARK`` (``default_setup`` sets it for training; the
recipe turns it on). TF32 keeps float32 storage and rounds matmul / convolution inputs to a 10-bit
mantissa on Ampere and later GPUs (about 1e-3 relative per product); the release sets
``torch.set_float32_matmul_precision("high")`` in its ``train_net.py``.
"""
import logging

import torch

__all__ = ["apply_cuda_settings"]

logger = logging.getLogger(__name__)


def apply_cuda_settings(cfg) -> bool:
    """On a CUDA ``MODEL.DEVICE``, set TF32 for matmuls and cuDNN to ``MODEL.PIXELCLIP.ALLOW_TF32``; on other
    devices change nothing. Returns whether TF32 is now allowed for this run."""
    if torch.device(str(cfg.MODEL.DEVICE)).type != "cuda":
        return False
    allow = bool(cfg.MODEL.PIXELCLIP.ALLOW_TF32)
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    logger.info("TF32 matmul and cuDNN: %s (MODEL.PIXELCLIP.ALLOW_TF32); cudnn.benchmark: %s", allow,
                torch.backends.cudnn.benchmark)
    return allow
