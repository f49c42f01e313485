"""pixelclip/utils/files.py: list_files walks the tree, matches extensions without case, skips hidden and temporary files."""
import os

from pixelclip.utils.files import IMAGE_EXTENSIONS, list_files
from pixelclip.utils.io import temp_path_for


def test_list_files_is_sorted_recursive_case_blind_and_skips_hidden_and_temporary_entries(tmp_path):
    for rel in ("b.jpg", "a/c.PNG", "a/z/d.jpeg", "A.JPG", "notes.txt", ".hidden.jpg", ".cache/e.jpg", "mask.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    open(temp_path_for(tmp_path / "a" / "f.jpg"), "wb").close()  # an interrupted atomic_write
    (tmp_path / "linked").symlink_to(tmp_path / "a" / "z", target_is_directory=True)  # a linked folder is followed
    # sorted as Python sorts strings: upper case before lower case, "a/..." before "b.jpg"
    assert list_files(str(tmp_path), IMAGE_EXTENSIONS) == ["A.JPG", "a/c.PNG", "a/z/d.jpeg", "b.jpg", "linked/d.jpeg"]
    assert list_files(str(tmp_path), (".json",)) == ["mask.json"]
    assert os.listdir(tmp_path / ".cache") == ["e.jpg"]  # present, but hidden by its folder
