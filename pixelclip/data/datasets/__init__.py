"""Dataset registrations: every module in this folder registers its datasets on import.

Each file holds one family (SA-1B, unlabeled folders, ADE20K, Pascal Context, COCO-Stuff,
Pascal VOC, Cityscapes, the synthetic world); roots resolve under ``$DETECTRON2_DATASETS``
(default ``datasets/``). Registration is lazy: nothing is read from disk until a dataset is used.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
