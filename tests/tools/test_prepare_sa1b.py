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


def test_a_killed_run_leaves_no_temporary_file_after_the_next_run(tmp_path):
    """A worker killed mid-write leaves '<target>.tmp-<pid>-<token>'; the next run removes it (its writer is
    gone) and writes the target."""
    import os
    import subprocess

    from pixelclip.utils.io import TEMP_MARKER

    script = _load_script()
    raw, out = tmp_path / "raw", tmp_path / "sa1b"
    _raw_sa1b(raw, n=1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    left = out / "images" / "sa_000000" / f"sa_0.jpg{TEMP_MARKER}{child.pid}-0123abcd"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"\xff\xd8")
    old = os.stat(tmp_path).st_mtime - 3600
    os.utime(left, (old, old))
    summary = script.main(["--input", str(raw), "--output", str(out), "--short-side", "30", "--no-progress"])
    assert summary["prepared"] == 1 and not left.exists()
    assert [p.name for p in (out / "images" / "sa_000000").iterdir()] == ["sa_0.jpg"]


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


# ------------------------------------------------------------------------------------------------
# Mask geometry, by hand: nearest-neighbour sampling at pixel centres (PIL's NEAREST, the image's grid)
# ------------------------------------------------------------------------------------------------
def _centre_source(n_src: int, n_dst: int):
    """Source index of each destination pixel under nearest sampling at pixel centres:
    floor((j + 1/2) * n_src / n_dst), in integers."""
    return [((2 * j + 1) * n_src) // (2 * n_dst) for j in range(n_dst)]


def _sa1b_annotation(mask: np.ndarray, **extra):
    """One SA-1B annotation written with pycocotools (the reference encoder), counts as a str."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    ann = {"segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
           "area": int(mask_util.area(rle)), "bbox": [float(v) for v in mask_util.toBbox(rle)]}
    ann.update(extra)
    return ann


def test_masks_are_resized_with_nearest_at_pixel_centres(tmp_path):
    """70×97 -> short side 30: (30, 42) (97 * 30 / 70 = 41.57 rounds to 42). One mask per source column and
    per source row: exactly the columns / rows that nearest sampling at pixel centres picks survive, each
    as one full output column / row where it lands; a bilinear or area resize, or the corner-aligned
    floor(j * n_src / n_dst) of cv2's INTER_NEAREST, keeps other ones."""
    from pycocotools import mask as mask_util

    script = _load_script()
    h, w, short = 70, 97, 30
    assert script.resized_size(h, w, short) == (30, 42) and script.resized_size(w, h, short) == (42, 30)
    assert script.resized_size(1500, 2250, 750) == (750, 1125)  # SA-1B: half size
    masks = []
    for c in range(w):
        m = np.zeros((h, w), dtype=bool)
        m[:, c] = True
        masks.append(m)
    for r in range(h):
        m = np.zeros((h, w), dtype=bool)
        m[r, :] = True
        masks.append(m)
    block = np.zeros((h, w), dtype=bool)
    block[11:51, 23:65] = True
    masks.append(block)
    folder = tmp_path / "raw" / "sa_000001"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(folder / "sa_1.jpg")
    anns = [_sa1b_annotation(m, id=i, point_coords=[[30.0, 20.0]], crop_box=[0, 0, w, h])
            for i, m in enumerate(masks)]
    (folder / "sa_1.json").write_text(json.dumps(
        {"image": {"image_id": 1, "file_name": "sa_1.jpg", "height": h, "width": w}, "annotations": anns}))

    summary = script.main(["--input", str(tmp_path / "raw"), "--output", str(tmp_path / "out"),
                           "--short-side", str(short), "--no-progress"])
    assert summary["prepared"] == 1, summary
    record = json.loads((tmp_path / "out" / "annotations" / "sa_000001" / "sa_1.json").read_text())
    assert (record["image"]["height"], record["image"]["width"]) == (30, 42)
    assert Image.open(tmp_path / "out" / "images" / "sa_000001" / "sa_1.jpg").size == (42, 30)

    cols, rows = _centre_source(w, 42), _centre_source(h, 30)
    expected_ids = cols + [w + r for r in rows] + [w + h]  # both lists increase: no repeats
    out = record["annotations"]
    assert [a["id"] for a in out] == expected_ids
    for ann in out:
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode("ascii"))
        got = mask_util.decode(rle).astype(bool)
        i = ann["id"]
        expected = np.zeros((30, 42), dtype=bool)
        if i < w:
            expected[:, cols.index(i)] = True
        elif i < w + h:
            expected[rows.index(i - w), :] = True
        else:
            expected[np.ix_([11 <= r < 51 for r in rows], [23 <= c < 65 for c in cols])] = True
        np.testing.assert_array_equal(got, expected, err_msg=f"mask {i}")
        assert ann["area"] == int(mask_util.area(rle)) == expected.sum()
        assert ann["bbox"] == [int(v) for v in mask_util.toBbox(rle)]
        # SA-1B's point / crop coordinates are (x, y) pixels: x scales by 42/97, y by 30/70
        assert ann["point_coords"] == [[pytest.approx(30 * 42 / 97), pytest.approx(20 * 30 / 70)]]
        assert ann["crop_box"] == [0, 0, pytest.approx(42.0), pytest.approx(30.0)]
