"""The world on disk: real formats, registered datasets, resumable and shared builds."""
import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from pixelclip.data.datasets.synthetic import register_synthetic_world
from pixelclip.data.mask_io import decode_masks, read_mask_file
from pixelclip.evaluation import read_label_file
from pixelclip.synthetic.storage import WorldSpec, ensure_world
from pixelclip.synthetic.world import CLASS_NAMES


def test_world_on_disk_and_registration(tmp_path):
    spec = WorldSpec(num_train=5, num_val=3)
    root = str(tmp_path / "world")
    register_synthetic_world("synthetic_t1", root, spec)
    assert not os.path.exists(root)  # lazy: nothing is written at registration

    train = DatasetCatalog.get("synthetic_t1_train")
    assert len(train) == 5 and os.path.isfile(os.path.join(root, "world.json"))
    record = read_mask_file(train[0]["mask_file"], image_size=(96, 96), check_rle=True)
    assert record["image"]["file_name"] == "000000.png" and len(record["annotations"]) > 1
    assert all("category_id" not in a and "label" not in a for a in record["annotations"])
    control = DatasetCatalog.get("synthetic_t1_train_random_masks")
    masks = decode_masks(read_mask_file(train[0]["mask_file"]))
    moved = decode_masks(read_mask_file(control[0]["mask_file"]))
    assert sorted(masks.reshape(len(masks), -1).sum(1)) == sorted(moved.reshape(len(moved), -1).sum(1))

    val = DatasetCatalog.get("synthetic_t1_val_sem_seg")
    assert len(val) == 3 and val[0]["height"] == 96
    label = read_label_file(val[0]["sem_seg_file_name"])
    assert label.shape == (96, 96) and label.max() < len(CLASS_NAMES)
    # the headroom diagnostic's inputs: region maps (one class per region) and SAM-like masks of the region map
    regions = read_label_file(os.path.join(root, "val", "regions", "000000.png"))
    assert regions.shape == (96, 96) and regions.min() >= 1
    assert all(len(np.unique(label[regions == r])) == 1 for r in np.unique(regions))
    val_masks = decode_masks(read_mask_file(os.path.join(root, "val", "masks", "000000.json")))
    assert val_masks.shape[1:] == (96, 96) and len(val_masks) >= 1
    meta = MetadataCatalog.get("synthetic_t1_val_sem_seg")
    assert meta.evaluator_type == "sem_seg" and meta.ignore_label == 255 and meta.stuff_classes == list(CLASS_NAMES)


def test_resume_and_spec_mismatch(tmp_path):
    root = str(tmp_path / "w")
    spec = WorldSpec(num_train=3, num_val=2)
    ensure_world(root, spec)
    first = open(os.path.join(root, "train", "masks", "000001.json")).read()
    # an interrupted build: the marker and one file are gone; a second build restores the same bytes
    os.remove(os.path.join(root, "world.json"))
    os.remove(os.path.join(root, "train", "images", "000001.png"))
    ensure_world(root, spec)
    assert open(os.path.join(root, "train", "masks", "000001.json")).read() == first
    assert os.path.isfile(os.path.join(root, "train", "images", "000001.png"))  # the missing image is made again
    assert json.load(open(os.path.join(root, "world.json")))["num_train"] == 3
    with pytest.raises(ValueError, match="other parameters"):
        ensure_world(root, WorldSpec(num_train=4, num_val=2))


def test_environment_picks_the_default_world(monkeypatch, tmp_path):
    from pixelclip.data.datasets import synthetic

    monkeypatch.setenv("PIXELCLIP_SYNTHETIC_ROOT", str(tmp_path))
    monkeypatch.setenv("PIXELCLIP_SYNTHETIC_SIZE", "7,2")
    root, spec = synthetic.default_world()
    assert root == str(tmp_path) and (spec.num_train, spec.num_val) == (7, 2)
    monkeypatch.setenv("PIXELCLIP_SYNTHETIC_SIZE", "seven")
    with pytest.raises(ValueError, match="PIXELCLIP_SYNTHETIC_SIZE"):
        synthetic.default_world()
    assert np.isscalar(spec.num_train)


def test_files_hold_the_scenes_of_their_seeds(tmp_path):
    """Train image i is scene i, val image j scene 1_000_000 + j (RGB as generated, PNG read with PIL); val
    labels and regions are the scene's maps; the masks are the SAM-like masks of the region map and the
    control file the same masks moved (seeded by the scene's seed)."""
    from PIL import Image

    from pixelclip.synthetic.masks import random_masks_like, sam_like_masks
    from pixelclip.synthetic.storage import VAL_SEED_BASE
    from pixelclip.synthetic.world import WorldConfig, generate_scene

    world = WorldConfig(image_size=32)
    root = ensure_world(str(tmp_path / "w"), WorldSpec(num_train=2, num_val=2, world=world))
    assert VAL_SEED_BASE == 1_000_000
    for i in range(2):
        scene = generate_scene(i, world)
        name = f"{i:06d}"
        np.testing.assert_array_equal(np.asarray(Image.open(os.path.join(root, "train", "images", name + ".png"))),
                                      scene.image)
        masks = decode_masks(read_mask_file(os.path.join(root, "train", "masks", name + ".json")))
        np.testing.assert_array_equal(masks, sam_like_masks(scene.regions, i))
        moved = decode_masks(read_mask_file(os.path.join(root, "train", "random_masks", name + ".json")))
        np.testing.assert_array_equal(moved, random_masks_like(masks, i))

        scene = generate_scene(1_000_000 + i, world)
        for sub, expected in (("images", scene.image), ("labels", scene.labels), ("regions", scene.regions)):
            got = np.asarray(Image.open(os.path.join(root, "val", sub, name + ".png")))
            np.testing.assert_array_equal(got, expected, err_msg=f"val/{sub}/{name}.png")
        masks = decode_masks(read_mask_file(os.path.join(root, "val", "masks", name + ".json")))
        np.testing.assert_array_equal(masks, sam_like_masks(scene.regions, 1_000_000 + i))
