"""pixelclip/data/datasets/_sem_seg.py: which files a benchmark is made of (junk files in the folders,
the split list a shared image folder is read through) and where ``$DETECTRON2_DATASETS`` points."""
import uuid

import pytest
from detectron2.data import DatasetCatalog
from fixtures.benchmarks import make_ade20k_150_miniature, make_context_59_miniature, make_voc_20_miniature

from pixelclip.data.datasets._sem_seg import datasets_root
from pixelclip.errors import DatasetError


def _name(prefix: str) -> str:
    return f"test_{prefix}_{uuid.uuid4().hex[:8]}"


def test_hidden_and_temporary_files_are_not_labels(tmp_path):
    """macOS' AppleDouble files (``._x.png``) and files named with the temporary marker of an interrupted
    write end in ``.png`` too; counted as label files they would have no image and stop the run."""
    mini = make_ade20k_150_miniature(tmp_path)
    label_dir, image_dir = mini.label_files[0].parent, mini.image_files[0].parent
    (label_dir / "._ADE_val_00000001.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (image_dir / "._ADE_val_00000001.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (label_dir / "ADE_val_00000002.tmp-4242-0123abcd.png").write_bytes(mini.label_files[1].read_bytes())
    dicts = DatasetCatalog.get(mini.register(_name("junk")))
    assert [d["sem_seg_file_name"] for d in dicts] == [str(p) for p in mini.label_files]
    assert [d["file_name"] for d in dicts] == [str(p) for p in mini.image_files]


def test_pascal_context_reads_the_first_split_list_that_exists_skipping_comments(tmp_path):
    """Split lists in the documented order: annotations_detectron2/val_ids.txt (the prepare script's), then
    pascalcontext_val.txt, then ImageSets/Main/val.txt; a line starting with '#' is no image id."""
    mini = make_context_59_miniature(tmp_path)  # writes ImageSets/Main/val.txt with its two ids
    stems = [p.stem for p in mini.image_files]
    base = tmp_path / "VOCdevkit" / "VOC2010"
    main_val = base / "ImageSets" / "Main" / "val.txt"
    main_val.write_text("\n".join(stems + ["2008_000077"]) + "\n")  # 2008_000077: neither image nor label
    context_val = base / "pascalcontext_val.txt"
    context_val.write_text("# the Pascal Context validation ids\n" + "\n".join(stems) + "\n")
    expected = [str(p) for p in mini.label_files]

    # pascalcontext_val.txt before ImageSets/Main/val.txt
    assert [d["sem_seg_file_name"] for d in DatasetCatalog.get(mini.register(_name("pc_ctx")))] == expected
    # val_ids.txt before both
    context_val.write_text("2008_000077\n")
    (base / "annotations_detectron2" / "val_ids.txt").write_text("\n".join(stems) + "\n")
    assert [d["sem_seg_file_name"] for d in DatasetCatalog.get(mini.register(_name("pc_ids")))] == expected
    # the last resort: ImageSets/Main/val.txt, whose extra id has no label file
    (base / "annotations_detectron2" / "val_ids.txt").unlink()
    context_val.unlink()
    with pytest.raises(DatasetError, match=r"1 of 3 images listed in .*Main/val\.txt have no label file"):
        DatasetCatalog.get(mini.register(_name("pc_main")))


def test_a_listed_image_that_does_not_exist_is_named(tmp_path):
    """An id of the split list with its label file but no image: said as such, not as a corrupt image."""
    mini = make_voc_20_miniature(tmp_path)
    base = tmp_path / "VOCdevkit" / "VOC2012"
    (mini.label_files[0].parent / "2007_000099.png").write_bytes(mini.label_files[0].read_bytes())
    split = base / "ImageSets" / "Segmentation" / "val.txt"
    split.write_text(split.read_text() + "2007_000099\n")
    with pytest.raises(DatasetError) as err:
        DatasetCatalog.get(mini.register(_name("voc_absent")))
    message = str(err.value)
    assert "1 images of the split list" in message and "do not exist" in message
    assert str(base / "JPEGImages" / "2007_000099.jpg") in message


def test_datasets_root_follows_the_environment_and_expands_home(tmp_path, monkeypatch):
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    assert datasets_root() == "datasets"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DETECTRON2_DATASETS", "~/d2data")
    assert datasets_root() == str(tmp_path / "d2data")


def test_a_class_name_listed_twice_is_refused_at_registration(tmp_path):
    from pixelclip.data.datasets._sem_seg import register_sem_seg
    from pixelclip.errors import VocabularyError

    name = _name("dup")
    with pytest.raises(VocabularyError, match=r"repeats 1 class name\(s\): 'sky' at ids 0, 2"):
        register_sem_seg(name, image_root=str(tmp_path), sem_seg_root=str(tmp_path),
                         stuff_classes=["sky", "road", "sky"], ignore_label=255, gt_ext="png", image_ext="jpg")
    assert name not in DatasetCatalog.list()
