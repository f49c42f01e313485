"""``overlays.png`` of the demo: image | ground truth | one prediction per model, on validation images."""
import contextlib
import logging
from typing import Iterator, List, Tuple

from ..utils.io import atomic_write


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence INFO logging while models are built (they log their whole architecture)."""
    loggers = [logging.getLogger(n) for n in ("", "detectron2", "d2", "fvcore", "pixelclip")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def load_model(config: str, opts: List[str], weights: str):
    """(cfg, model in eval mode) of a config + overrides, with ``weights`` loaded when given."""
    from detectron2.checkpoint import DetectionCheckpointer

    from ..config import get_pixelclip_cfg
    from ..trainer import Trainer

    cfg = get_pixelclip_cfg(config, opts)
    model = Trainer.build_model(cfg)
    if weights:
        DetectionCheckpointer(model).load(weights)
    return cfg, model.eval()


def draw_overlays(path: str, dataset: str, panels: List[Tuple[str, str, List[str], str]], num_images: int) -> None:
    """Image | ground truth | one prediction per panel, on the first ``num_images`` validation images.

    ``panels``: (title, config, opts, weights or "") of each model to show.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from matplotlib.patches import Patch

    from ..data.label_io import read_label_file
    from ..data.mappers.semantic_test_dataset_mapper import SemanticTestMapper

    meta = MetadataCatalog.get(dataset)
    colors = np.array(meta.stuff_colors, np.uint8)
    records = DatasetCatalog.get(dataset)[:num_images]
    columns = [("image", None), ("ground truth", None)] + [(p[0], p) for p in panels]
    preds = {}
    for title, config, opts, weights in panels:
        with quiet_logs():
            cfg, model = load_model(config, opts, weights)
        model.set_vocabulary(meta.stuff_classes)
        mapper = SemanticTestMapper(cfg)
        with torch.no_grad():
            outs = model([mapper(r) for r in records])
        preds[title] = [o["sem_seg"].argmax(0).numpy() for o in outs]
    fig, axes = plt.subplots(len(records), len(columns), figsize=(2.2 * len(columns), 2.2 * len(records) + 0.9),
                             squeeze=False)
    for i, rec in enumerate(records):
        image = plt.imread(rec["file_name"])
        label = read_label_file(rec["sem_seg_file_name"])
        for j, (title, _) in enumerate(columns):
            ax = axes[i, j]
            if title == "image":
                ax.imshow(image)
            elif title == "ground truth":
                ax.imshow(colors[np.clip(label, 0, len(colors) - 1)])
            else:
                ax.imshow(colors[preds[title][i]])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    handles = [Patch(color=colors[c] / 255.0, label=name) for c, name in enumerate(meta.stuff_classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    atomic_write(path, writer=lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
