"""datasets/prepare_sa1b.py: images and RLE masks resized together, resumable, loadable as sa1b."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelclip.data.datasets.sa1b import load_sa1b
from pixelclip.data.mask_io import decode_masks, encode_masks, read_mask_file, write_mask_file

REPO = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("prepare_sa1b", REPO / "datasets" / "prepare_sa1b.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["prepare_sa1b"] = module  # so --workers can pickle its functions
    spec.loader.exec_module(module)
    return module


def _raw_sa1b(root: Path, n=3, h=60, w=90):
    """SA-1B as extracted from a tar: sa_000000/sa_<i>.jpg beside sa_<i>.json."""
    for i in range(n):
        masks = np.zeros((3, h, w), dtype=bool)
        masks[0, 10:40, 20:60] = True
        masks[1, 40:, :] = True
        masks[2, 0, 0] = True  # one pixel: vanishes at half size
        image = np.zeros((h, w, 3), dtype=np.uint8)
        image[masks[0]] = (250, 10, 10)
        folder = root / "sa_000000"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"sa_{i}.jpg", quality=98)
        anns = encode_masks(masks, {"predicted_iou": [0.9, 0.8, 0.7], "point_coords": [[[30.0, 20.0]]] * 3,
                                    "crop_box": [[0, 0, w, h]] * 3})
        write_mask_file(folder / f"sa_{i}.json", {"image_id": i, "file_name": f"sa_{i}.jpg", "height": h, "width": w},
                        anns)


def test_resizes_images_and_masks_together_and_resumes(tmp_path):
    script = _load_script()
    raw, out = tmp_path / "raw", tmp_path / "sa1b"
    _raw_sa1b(raw)
    (raw / "sa_000000" / "sa_2.json").write_text("{oops")  # a broken file is reported, not fatal
    summary = script.main(["--input", str(raw), "--output", str(out), "--short-side", "30", "--no-progress"])
    assert summary["prepared"] == 2 and summary["failed"] == 1
    assert "malformed JSON" in summary["errors"]["sa_000000/sa_2.jpg"]

    record = read_mask_file(out / "annotations" / "sa_000000" / "sa_0.json", check_rle=True)
    assert record["image"] == {"image_id": 0, "file_name": "sa_0.jpg", "height": 30, "width": 45}
    assert Image.open(out / "images" / "sa_000000" / "sa_0.jpg").size == (45, 30)
    masks = decode_masks(record)
    assert len(masks) == 2  # the one-pixel mask vanished
    expected = np.zeros((30, 45), bool)
    expected[5:20, 10:30] = True
    np.testing.assert_array_equal(masks[0], expected)
    first = record["annotations"][0]
    assert first["area"] == expected.sum() and first["bbox"] == [10, 5, 20, 15] and first["predicted_iou"] == 0.9
    assert first["point_coords"] == [[15.0, 10.0]] and first["crop_box"] == [0.0, 0.0, 45.0, 30.0]
    red = np.asarray(Image.open(out / "images" / "sa_000000" / "sa_0.jpg"))[..., 0] > 128
    assert (red == masks[0]).mean() > 0.97  # image and mask still aligned

    dicts = load_sa1b(str(out))
    assert [d["image_id"] for d in dicts] == [0, 1]

    # Resume: fix the broken file; only that image is processed.
    _raw_sa1b(tmp_path / "fixed")
    (raw / "sa_000000" / "sa_2.json").write_text((tmp_path / "fixed" / "sa_000000" / "sa_2.json").read_text())
    summary = script.main(["--input", str(raw), "--output", str(out), "--short-side", "30", "--no-progress"])
    assert summary["prepared"] == 1 and summary["failed"] == 0
    assert json.loads((out / "prepare_sa1b_summary.json").read_text())["prepared"] == 1


def test_small_images_are_kept_as_they_are(tmp_path):
    script = _load_script()
    _raw_sa1b(tmp_path / "raw", n=1)
    script.main(["--input", str(tmp_path / "raw"), "--output", str(tmp_path / "out"), "--short-side", "100",
                 "--workers", "2", "--no-progress"])
    record = read_mask_file(tmp_path / "out" / "annotations" / "sa_000000" / "sa_0.json")
    assert (record["image"]["height"], record["image"]["width"]) == (60, 90) and len(record["annotations"]) == 3


def test_wrong_input_layout_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    with pytest.raises(SystemExit) as e:
        _load_script().main(["--input", str(tmp_path / "raw"), "--output", str(tmp_path / "out")])
    expected = f"expected SA-1B images (sa_*.jpg with sa_*.json beside them) at {tmp_path / 'raw'}"
    assert e.value.code == 2 and expected in capsys.readouterr().err


def test_the_release_tar_list_selects_the_folders(tmp_path):
    """datasets/sa1b.txt is the release's list (100 tars, sa_000020 ... sa_000719); --tars keeps only them."""
    names = (REPO / "datasets" / "sa1b.txt").read_text().split()
    assert len(names) == len(set(names)) == 100 and names[0] == "sa_000020" and names[-1] == "sa_000719"
    script = _load_script()
    raw, out = tmp_path / "raw", tmp_path / "sa1b"
    _raw_sa1b(raw, n=1)
    (raw / "sa_000000").rename(raw / "sa_000020")
    _raw_sa1b(raw, n=1)  # sa_000000: not in the list
    listed = tmp_path / "tars.txt"
    listed.write_text("sa_000020\nsa_000021\n")
    summary = script.main(["--input", str(raw), "--output", str(out), "--short-side", "30", "--no-progress",
                           "--tars", str(listed)])
    assert summary["prepared"] == 1
    assert (out / "annotations" / "sa_000020" / "sa_0.json").is_file()
    assert not (out / "annotations" / "sa_000000").exists()
