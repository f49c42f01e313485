"""Unlabeled folder pairs register by name and list lazily, without opening any file."""
import builtins
import logging
import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from pixelclip.data.datasets.unlabeled_folder import (
    load_unlabeled_folder,
    register_all_unlabeled,
    register_unlabeled_folder,
)


def _touch(path, text="not read at registration"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_register_and_load_pairs_images_with_mask_files(tmp_path, caplog):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for rel in ("a.jpg", "sub/b.png", "sub/deep/c.JPEG", "d.jpg"):
        _touch(images / rel)  # garbage bytes: nothing may be decoded here
    for rel in ("a.json", "sub/b.json", "sub/deep/c.json", "a.json.tmp-123-abcd", "orphan.json"):
        _touch(masks / rel)
    _touch(images / "notes.txt")
    register_unlabeled_folder("test_unlabeled_pairs", str(images), str(masks), note="x")
    assert "test_unlabeled_pairs" in DatasetCatalog.list()
    meta = MetadataCatalog.get("test_unlabeled_pairs")
    assert meta.evaluator_type == "unlabeled" and meta.mask_root == str(masks) and meta.note == "x"
    with caplog.at_level(logging.WARNING):
        dicts = DatasetCatalog.get("test_unlabeled_pairs")
    assert [d["image_id"] for d in dicts] == ["a", "sub/b", "sub/deep/c"]
    assert dicts[1] == {"file_name": str(images / "sub/b.png"), "mask_file": str(masks / "sub/b.json"),
                        "image_id": "sub/b"}
    assert "1 of 4 images have no mask file" in caplog.text and "d.jpg" in caplog.text


def test_images_without_masks_for_online_dino(tmp_path):
    _touch(tmp_path / "x.png")
    assert load_unlabeled_folder(str(tmp_path)) == [{"file_name": str(tmp_path / "x.png"), "image_id": "x"}]


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder .* does not exist"):
        load_unlabeled_folder(str(tmp_path / "nope"), str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image"):
        load_unlabeled_folder(str(tmp_path / "empty"), str(tmp_path))
    _touch(tmp_path / "imgs" / "a.jpg")
    with pytest.raises(FileNotFoundError, match="generate masks with tools/generate_masks.py"):
        load_unlabeled_folder(str(tmp_path / "imgs"), str(tmp_path / "no_masks"))
    (tmp_path / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match=r"none of the 1 images .*expected e\.g\. .*a\.json"):
        load_unlabeled_folder(str(tmp_path / "imgs"), str(tmp_path / "masks"))


def test_datasets_root_folders_register_by_name(tmp_path):
    _touch(tmp_path / "unlabeled" / "mine" / "images" / "a.jpg")
    _touch(tmp_path / "unlabeled" / "mine" / "masks" / "a.json")
    _touch(tmp_path / "unlabeled" / "nomasks" / "images" / "b.jpg")
    (tmp_path / "unlabeled" / "junk").mkdir()
    register_all_unlabeled(str(tmp_path))
    assert len(DatasetCatalog.get("unlabeled_mine")) == 1 and "mask_file" in DatasetCatalog.get("unlabeled_mine")[0]
    assert "mask_file" not in DatasetCatalog.get("unlabeled_nomasks")[0]
    assert "unlabeled_junk" not in DatasetCatalog.list()


def test_listing_reads_only_the_directories(tmp_path, monkeypatch):
    """Listing costs one directory scan per folder, whatever the number of files: no file is opened or stat'ed."""
    n = 2000
    for folder, ext in (("images", ".jpg"), ("masks", ".json")):
        for shard in range(10):
            (tmp_path / folder / f"sa_{shard:06d}").mkdir(parents=True)
        for i in range(n):
            (tmp_path / folder / f"sa_{i % 10:06d}" / f"sa_{i}{ext}").touch()
    scanned, touched = [], []
    real = {"scandir": os.scandir, "stat": os.stat, "lstat": os.lstat, "open": builtins.open}
    monkeypatch.setattr(os, "scandir", lambda path: scanned.append(path) or real["scandir"](path))
    for name in ("stat", "lstat", "open"):
        def spy(path, *args, _name=name, **kwargs):
            touched.append(str(path))
            return real[_name](path, *args, **kwargs)
        monkeypatch.setattr(builtins if name == "open" else os, name, spy)
    dicts = load_unlabeled_folder(str(tmp_path / "images"), str(tmp_path / "masks"))
    monkeypatch.undo()
    assert len(dicts) == n
    assert not [t for t in touched if t.endswith((".jpg", ".json"))]  # no file opened or stat'ed
    assert len(scanned) == 2 * 11  # images/ and masks/, each with 10 shard folders


def test_dots_in_a_file_name_are_part_of_its_id(tmp_path):
    _touch(tmp_path / "images" / "img.v2.jpg")
    _touch(tmp_path / "images" / "img.png")
    _touch(tmp_path / "masks" / "img.v2.json")
    dicts = load_unlabeled_folder(str(tmp_path / "images"), str(tmp_path / "masks"))
    assert dicts == [{"file_name": str(tmp_path / "images" / "img.v2.jpg"),
                      "mask_file": str(tmp_path / "masks" / "img.v2.json"), "image_id": "img.v2"}]
