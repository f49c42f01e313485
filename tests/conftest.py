"""Shared fixtures: tiny PixelCLIP configs built on CPU, no network."""
import logging
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on a download in tests
os.environ.setdefault("PIXELCLIP_TEXT_CACHE", "off")  # no text-embedding files in the user's cache (tests opt in)

import pytest  # noqa: E402
import torch  # noqa: E402

import pixelclip  # noqa: E402,F401
from pixelclip import get_pixelclip_cfg  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ROOT = Path(__file__).resolve().parents[1]  # the repository


def make_tiny_cfg(model_name: str = "PixelCLIP-Tiny-ViT", config_funcs=(), **overrides):
    """The recipe (configs/Base-PixelCLIP.yaml) with a tiny random CLIP, small resolutions and K = 8, on CPU;
    ``config_funcs``: a project's config functions, added before the recipe (``get_pixelclip_cfg``)."""
    cfg = get_pixelclip_cfg(config_funcs=config_funcs)
    cfg.MODEL.DEVICE = "cpu"
    p = cfg.MODEL.PIXELCLIP
    p.CLIP_MODEL_NAME = model_name
    p.CLIP_PRETRAINED = ""
    p.CLIP_RESOLUTION = (64, 64)
    p.NUM_PROMPTS = 8
    p.MASK_RESOLUTION = 32
    p.TEST.TEMPLATES = "single"
    p.TEST.FEATURE_RESOLUTION = 16
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    for key, value in overrides.items():
        node = cfg
        *path, last = key.split(".")
        for part in path:
            node = getattr(node, part)
        setattr(node, last, value)
    return cfg


@pytest.fixture
def tiny_cfg():
    return make_tiny_cfg()


_LOGGERS = ("pixelclip", "detectron2", "fvcore")


@pytest.fixture(autouse=True)
def _log_handlers_of_this_test_only():
    """Handlers a test's in-process tool run added (a console handler on that test's captured stdout, closed
    once the test ends) are removed after it, so later tests do not log into a closed stream."""
    from detectron2.utils.logger import setup_logger

    before = {name: list(logging.getLogger(name).handlers) for name in _LOGGERS}
    yield
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if h not in before[name]]:
            logger.removeHandler(handler)
    setup_logger.cache_clear()  # a later setup_logger call with the same arguments adds its handlers again
