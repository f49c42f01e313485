"""Vocabularies: the packaged class-name lists and load_vocabulary's specs and errors."""
import json

import pytest

import pixelclip  # noqa: F401  (registers the datasets)
from pixelclip.data.vocabulary import (
    PACKAGED_VOCABULARIES,
    VOCABULARY_DIR,
    load_vocabulary,
    packaged_vocabulary,
)
from pixelclip.errors import VocabularyError

SIZES = {"ade150": 150, "ade847": 847, "pc59": 59, "pc60": 60, "pc459": 459, "coco_stuff171": 171,
         "voc20": 20, "voc21": 21, "cityscapes19": 19}


def test_packaged_vocabularies_have_the_conventional_sizes_and_names():
    assert set(PACKAGED_VOCABULARIES) == set(SIZES)
    for name, size in SIZES.items():
        names = packaged_vocabulary(name)
        assert len(names) == size and len(set(names)) == size, name
        assert all(n == n.strip() and n for n in names), name
    ade847 = packaged_vocabulary("ade847")
    assert ade847[0] == "wall" and ade847[1] == "building, edifice"
    assert ade847[300] == "altar, communion table, lord's table"
    assert ade847[846] == "adding machine, totalizer, totaliser"
    assert packaged_vocabulary("ade150")[7] == "bed"
    assert packaged_vocabulary("pc459")[0] == "accordion" and packaged_vocabulary("pc459")[-1] == "wool"
    assert packaged_vocabulary("coco_stuff171")[80] == "banner"
    assert packaged_vocabulary("voc21") == packaged_vocabulary("voc20") + ["background"]
    assert packaged_vocabulary("pc60") == packaged_vocabulary("pc59") + ["background"]
    ids = json.loads((VOCABULARY_DIR / "ade847_ade_ids.json").read_text())
    assert len(ids) == 847 == len(set(ids)) and ids[:3] == [2978, 312, 2420]
    with pytest.raises(KeyError, match="ade150"):
        packaged_vocabulary("ade151")


def test_pc59_classes_sit_at_the_published_459_ids():
    """The 1-based 459-class ids of the 59 classes (the field's _mapping of trainval_merged.json)."""
    pc459 = packaged_vocabulary("pc459")
    ids = [pc459.index("table" if n == "diningtable" else n) + 1 for n in packaged_vocabulary("pc59")]
    assert ids == [
        2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113,
        115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326,
        347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
    ]


def test_inline_lists():
    assert load_vocabulary(" cat, dog ,sofa ") == ["cat", "dog", "sofa"]
    assert load_vocabulary("sofa, couch; cat;dog;") == ["sofa, couch", "cat", "dog"]


def test_an_empty_entry_is_refused_naming_its_position(tmp_path):
    """Dropping it would give 'dog' id 1 where the user counted 2 ('cat,,dog')."""
    with pytest.raises(VocabularyError) as err:
        load_vocabulary("cat,,dog")
    assert str(err.value) == ("vocabulary 'cat,,dog' has an empty class name at position 1 (counting from 0; the "
                              "position is the label id) — remove the extra ',' or name the class there, so that "
                              "every id is the class you mean")
    with pytest.raises(VocabularyError, match=r"'; sky; ;road' has an empty class name at positions 0, 2 "):
        load_vocabulary("; sky; ;road")
    assert load_vocabulary("cat,dog,") == ["cat", "dog"]  # a trailing separator shifts no id
    js = tmp_path / "classes.json"
    js.write_text(json.dumps(["road", " ", "sky"]))
    with pytest.raises(VocabularyError, match=r"classes.json has an empty class name at position 1 "):
        load_vocabulary(str(js))


def test_class_files(tmp_path):
    txt = tmp_path / "classes.txt"
    txt.write_text("# my classes\ncat\n\n  sofa, couch  \n")
    assert load_vocabulary(str(txt)) == ["cat", "sofa, couch"]
    js = tmp_path / "classes.json"
    js.write_text(json.dumps(["road", "sky, heaven"]))
    assert load_vocabulary(str(js)) == ["road", "sky, heaven"]
    other = tmp_path / "classes.list"  # any existing file is read as text
    other.write_text("a\nb\n")
    assert load_vocabulary(str(other)) == ["a", "b"]


def test_dataset_names_and_packaged_names():
    assert load_vocabulary("voc_2012_test_background_sem_seg")[-1] == "background"
    assert len(load_vocabulary("pixelclip_ade20k_full_sem_seg_freq_val_all")) == 847
    assert load_vocabulary("cityscapes19")[6] == "traffic light"


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_vocabulary(str(tmp_path / "nope.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="empty.txt lists no class names"):
        load_vocabulary(str(empty))
    bad = tmp_path / "bad.json"
    bad.write_text('{"classes": ["a"]}')
    with pytest.raises(ValueError, match="JSON list"):
        load_vocabulary(str(bad))
    broken = tmp_path / "broken.json"
    broken.write_text('["a", ')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_vocabulary(str(broken))
    with pytest.raises(ValueError, match="empty vocabulary"):
        load_vocabulary("  ")
    with pytest.raises(ValueError, match="not a registered dataset"):
        load_vocabulary("ade20k_150_tset_sem_seg")
    with pytest.raises(ValueError, match="at least two"):
        load_vocabulary(",cat,")


def test_duplicates_are_refused_naming_them_and_their_ids(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\ndog\ncat\nsky\ndog\n")
    with pytest.raises(VocabularyError) as err:
        load_vocabulary(str(path))
    message = str(err.value)
    assert "classes.txt" in message and "repeats 2 class name(s)" in message
    assert "'cat' at ids 0, 2" in message and "'dog' at ids 1, 4" in message
    assert "list each class once" in message and "\n" not in message


def test_default_vocabulary_is_the_configs_spec_else_the_first_test_datasets_classes(tiny_cfg):
    from pixelclip.data.vocabulary import default_vocabulary

    assert default_vocabulary(tiny_cfg) is None  # no spec, no test dataset
    tiny_cfg.DATASETS.TEST = ("voc_2012_test_background_sem_seg", "cityscapes_19_val_sem_seg")
    assert default_vocabulary(tiny_cfg) == packaged_vocabulary("voc21")
    tiny_cfg.MODEL.PIXELCLIP.TEST.VOCABULARY = "sky; person, human"
    assert default_vocabulary(tiny_cfg) == ["sky", "person, human"]


def test_class_file_names_in_upper_case_and_indented_comments(tmp_path):
    js = tmp_path / "classes.JSON"  # read as JSON whatever the case of its extension
    js.write_text(json.dumps(["road", "sky, heaven"]))
    assert load_vocabulary(str(js)) == ["road", "sky, heaven"]
    with pytest.raises(FileNotFoundError, match="vocabulary file not found: .*Missing.TXT"):
        load_vocabulary(str(tmp_path / "Missing.TXT"))  # a file the user meant, not a one-class list
    txt = tmp_path / "classes.txt"
    txt.write_text("cat\n   # an indented comment\ndog\n")
    assert load_vocabulary(str(txt)) == ["cat", "dog"]


def test_check_vocabulary_strips_names_before_looking_for_repeats():
    from pixelclip.data.vocabulary import check_vocabulary

    assert check_vocabulary([" cat", "dog "], "x") == ["cat", "dog"]
    with pytest.raises(VocabularyError, match=r"repeats 1 class name\(s\): 'cat' at ids 0, 2"):
        check_vocabulary(["cat", "dog", "cat "], "x")
