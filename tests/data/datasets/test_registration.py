"""Dataset names shared with other Detectron2 projects: importing pixelclip before or after ZegFormer or
FC-CLIP crashes neither, and every name then points to a definite dataset."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog

import pixelclip  # noqa: F401  (registers the datasets)
from pixelclip.data.registry import register_dataset

ROOT = Path(__file__).resolve().parents[3]

# What the peers register on import, as their register_*.py files do (ZegFormer:
# mask_former/data/datasets/register_{ade20k_full_zero_freq,coco_stuff,pascal_voc}.py; FC-CLIP:
# fcclip/data/datasets/register_*.py, which also set metadata before registering).
ZEGFORMER_NAMES = (
    "ade20k_full_sem_seg_freq_train", "ade20k_full_sem_seg_freq_val", "ade20k_full_sem_seg_freq_val_all",
    "ade20k_full_sem_seg_freq_val_unseen", "coco_2017_test_stuff_seen_sem_seg", "coco_2017_train_stuff_seen_sem_seg",
    "coco_2017_val_all_stuff_sem_seg", "coco_2017_val_unseen_stuff_seen_sem_seg", "pascal_voc_test_seen_sem_seg",
    "pascal_voc_train_seen_sem_seg", "pascal_voc_val_all_sem_seg", "pascal_voc_val_unseen_sem_seg",
)
FCCLIP_NAMES = tuple(f"openvocab_{n}" for n in (
    "ade20k_full_sem_seg_train", "ade20k_full_sem_seg_val", "ade20k_instance_train", "ade20k_instance_val",
    "ade20k_panoptic_train", "ade20k_panoptic_val", "ade20k_sem_seg_train", "ade20k_sem_seg_val",
    "cityscapes_fine_panoptic_train", "cityscapes_fine_panoptic_val", "coco_2017_test_stuff_sem_seg",
    "coco_2017_train", "coco_2017_train_panoptic_with_sem_seg", "coco_2017_train_stuff_sem_seg", "coco_2017_val",
    "coco_2017_val_panoptic_with_sem_seg", "mapillary_vistas_panoptic_train", "mapillary_vistas_panoptic_val",
    "pascal20_sem_seg_train", "pascal20_sem_seg_val", "pascal21_sem_seg_train", "pascal21_sem_seg_val",
    "pascal_ctx459_sem_seg_train", "pascal_ctx459_sem_seg_val", "pascal_ctx59_sem_seg_train",
    "pascal_ctx59_sem_seg_val",
))
PEER_NAMES = ZEGFORMER_NAMES + FCCLIP_NAMES


def _ours() -> set:
    """Names this plugin holds: its ``pixelclip_*`` names and the bare aliases sharing their loader."""
    loaders = DatasetCatalog.data  # name -> loader (DatasetCatalog.get would call it)
    prefixed = {n for n in loaders if n.startswith("pixelclip_")}
    return prefixed | {n[len("pixelclip_"):] for n in prefixed if loaders.get(n[len("pixelclip_"):]) is loaders[n]}


def test_no_name_of_ours_is_one_the_peers_register():
    ours = _ours()
    assert "pixelclip_ade20k_full_sem_seg_freq_val_all" in ours and "ade20k_150_test_sem_seg" in ours
    assert not ours & set(PEER_NAMES)
    assert len(MetadataCatalog.get("pixelclip_ade20k_full_sem_seg_freq_val_all").stuff_classes) == 847


def test_peers_imported_after_pixelclip_register_their_names():
    def peer_loader():
        return []

    try:
        for name in PEER_NAMES:  # what ZegFormer's / FC-CLIP's modules do on import; raises on a taken name
            MetadataCatalog.get(name).set(stuff_classes=["peer class"], ignore_label=255, evaluator_type="sem_seg")
            DatasetCatalog.register(name, peer_loader)
        assert DatasetCatalog.get("ade20k_full_sem_seg_freq_val_all") == []
        assert MetadataCatalog.get("ade20k_full_sem_seg_freq_val_all").stuff_classes == ["peer class"]
        assert len(MetadataCatalog.get("pixelclip_ade20k_full_sem_seg_freq_val_all").stuff_classes) == 847
    finally:
        for name in PEER_NAMES:
            DatasetCatalog.pop(name, None)
            MetadataCatalog.pop(name, None)


def test_peers_imported_before_pixelclip_keep_their_names():
    # a fresh process: the peers' names (and one of our aliases, as another project might hold it) first
    code = textwrap.dedent(f"""
        import json
        from detectron2.data import DatasetCatalog, MetadataCatalog
        def peer_loader():
            return []
        for name in {list(PEER_NAMES) + ["ade20k_150_test_sem_seg"]!r}:
            MetadataCatalog.get(name).set(stuff_classes=["peer class"], ignore_label=255, evaluator_type="sem_seg")
            DatasetCatalog.register(name, peer_loader)
        MetadataCatalog.get("context_59_test_sem_seg").set(stuff_classes=["peer class"])  # metadata, no dataset
        import pixelclip
        out = {{}}
        for name in ("ade20k_full_sem_seg_freq_val_all", "pixelclip_ade20k_full_sem_seg_freq_val_all",
                     "ade20k_150_test_sem_seg", "pixelclip_ade20k_150_test_sem_seg", "context_59_test_sem_seg",
                     "pixelclip_context_59_test_sem_seg", "voc_2012_test_sem_seg"):
            out[name] = [DatasetCatalog.data.get(name) is peer_loader, name in DatasetCatalog.list(),
                         len(MetadataCatalog.get(name).get("stuff_classes", []))]
        print(json.dumps(out))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # [the peer's loader, registered at all, number of stuff_classes]
    assert out["ade20k_full_sem_seg_freq_val_all"] == [True, True, 1]  # ZegFormer's
    assert out["pixelclip_ade20k_full_sem_seg_freq_val_all"] == [False, True, 847]  # ours
    assert out["ade20k_150_test_sem_seg"] == [True, True, 1]  # taken first: left to the other project
    assert out["pixelclip_ade20k_150_test_sem_seg"] == [False, True, 150]
    assert out["context_59_test_sem_seg"] == [False, False, 1]  # its metadata was set by someone else: left alone
    assert out["pixelclip_context_59_test_sem_seg"] == [False, True, 59]
    assert out["voc_2012_test_sem_seg"] == [False, True, 20]  # free: the alias is ours
    assert "already taken" in result.stderr


def test_register_dataset_never_raises_on_a_taken_name():
    name = "test_registration_taken"
    try:
        assert register_dataset(name, lambda: ["first"], evaluator_type="unlabeled") == [
            "pixelclip_" + name, name]
        assert register_dataset(name, lambda: ["second"], evaluator_type="sem_seg") == []  # both taken: kept
        assert DatasetCatalog.get(name) == ["first"] and MetadataCatalog.get(name).evaluator_type == "unlabeled"
        assert register_dataset("pixelclip_" + name + "_b", lambda: [], alias=False) == ["pixelclip_" + name + "_b"]
    finally:
        for n in (name, "pixelclip_" + name, "pixelclip_" + name + "_b"):
            DatasetCatalog.pop(n, None)
            MetadataCatalog.pop(n, None)
