"""SA-1B registers in both layouts (prepared, extracted tars) with numeric image ids."""
import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from pixelclip.data.datasets.sa1b import load_sa1b, register_sa1b, sa1b_layout


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def test_builtin_names_are_registered():
    assert {"sa1b_train", "sa1b_raw_train"} <= set(DatasetCatalog.list())
    assert MetadataCatalog.get("sa1b_train").evaluator_type == "unlabeled"


def test_prepared_layout(tmp_path):
    _touch(tmp_path / "images" / "sa_000020" / "sa_223750.jpg")
    _touch(tmp_path / "annotations" / "sa_000020" / "sa_223750.json")
    assert sa1b_layout(str(tmp_path)) == (str(tmp_path / "images"), str(tmp_path / "annotations"))
    register_sa1b("test_sa1b_prepared", str(tmp_path))
    (d,) = DatasetCatalog.get("test_sa1b_prepared")
    assert d == {"file_name": str(tmp_path / "images/sa_000020/sa_223750.jpg"),
                 "mask_file": str(tmp_path / "annotations/sa_000020/sa_223750.json"), "image_id": 223750}


def test_extracted_tar_layout(tmp_path):
    for name in ("sa_1.jpg", "sa_1.json", "sa_2.jpg", "sa_2.json"):
        _touch(tmp_path / "sa_000000" / name)
    dicts = load_sa1b(str(tmp_path))
    assert [d["image_id"] for d in dicts] == [1, 2]
    assert dicts[0]["mask_file"] == str(tmp_path / "sa_000000" / "sa_1.json")


def test_missing_root_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="datasets/README.md"):
        load_sa1b(str(tmp_path / "sa1b"))


def test_prepared_layout_without_annotations_names_the_missing_mask_folder(tmp_path):
    """images/ alone is the prepared layout (masks not made yet), not the extracted one."""
    _touch(tmp_path / "images" / "sa_000020" / "sa_1.jpg")
    assert sa1b_layout(str(tmp_path)) == (str(tmp_path / "images"), str(tmp_path / "annotations"))
    with pytest.raises(FileNotFoundError, match=r"mask folder .*annotations' does not exist"):
        load_sa1b(str(tmp_path))


def test_builtin_names_point_at_their_folders():
    """sa1b_train is the resized subset (datasets/sa1b), sa1b_raw_train the full tars (datasets/sa1b_raw)."""
    assert os.path.basename(MetadataCatalog.get("pixelclip_sa1b_train").root) == "sa1b"
    assert os.path.basename(MetadataCatalog.get("pixelclip_sa1b_raw_train").root) == "sa1b_raw"
