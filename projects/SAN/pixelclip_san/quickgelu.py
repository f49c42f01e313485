"""``<ViT>-quickgelu`` architecture names for open_clip versions that lack them (SAN pins 2.16.0).

OpenAI's CLIP weights were trained with QuickGELU, ``x * sigmoid(1.702 x)``. In open_clip 2.16 the
architectures SAN names (``ViT-B-16``, ``ViT-L-14-336``) build GELU, and the only QuickGELU ViT
config is ``ViT-B-32-quickgelu``. With ``pretrained="openai"`` open_clip 2.16 rebuilds the model from
the OpenAI state dict with QuickGELU (``build_model_from_openai_state_dict``), but with a *file* as
``pretrained`` it builds the named config, GELU, and loads the file strictly without a word: the
weights fit, the activation is wrong. Registering ``ViT-B-16-quickgelu`` (the same architecture with
``"quick_gelu": true``) lets ``MODEL.SAN.CLIP_MODEL_NAME ViT-B-16-quickgelu`` with a file build what
the weights were trained with.
"""
import json
import os
import tempfile
from typing import List, Sequence

QUICKGELU_BASES = ("ViT-B-16", "ViT-B-32", "ViT-L-14", "ViT-L-14-336")


def register_quickgelu_configs(bases: Sequence[str] = QUICKGELU_BASES) -> List[str]:
    """Add ``<base>-quickgelu`` to open_clip's architectures for each base it knows and whose
    ``-quickgelu`` name it lacks (a copy of the base config with ``quick_gelu`` set); returns the names
    added (none on open_clip versions that ship them, e.g. 2.24 and 3.x). Uses open_clip's public
    ``add_model_config`` on a temporary folder; the configs stay registered for the process."""
    import open_clip

    known = set(open_clip.list_models())
    added = []
    with tempfile.TemporaryDirectory(prefix="pixelclip_san_configs_") as folder:
        for base in bases:
            name = f"{base}-quickgelu"
            if name in known or base not in known:
                continue
            config = open_clip.get_model_config(base)
            config["quick_gelu"] = True
            with open(os.path.join(folder, name + ".json"), "w") as f:
                json.dump(config, f)
            added.append(name)
        if added:
            open_clip.add_model_config(folder)  # read now; the folder may go afterwards
    return added


def clip_activations(module) -> List[str]:
    """The activation class names (sorted, unique) of the CLIP MLP blocks inside ``module``
    (open_clip's ``mlp.gelu``): ``["QuickGELU"]`` or ``["GELU"]`` for a consistent model."""
    return sorted({type(m).__name__ for n, m in module.named_modules() if n.endswith("mlp.gelu")})
