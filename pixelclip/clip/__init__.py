"""Everything that knows open_clip's internals: building models, dense features, text side.

Importing this package adds ``pixelclip/clip/model_configs/*.json`` (tiny test and synthetic-world
architectures) to open_clip's model registry, so ``open_clip.create_model(name)`` knows them.
"""
from pathlib import Path

import open_clip

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
open_clip.add_model_config(MODEL_CONFIG_DIR)
