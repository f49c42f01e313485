"""datasets/prepare_*.py, run in-process: the documented options (--overwrite, --split-file, the ADE-847
resize) and input forms the miniature downloads of test_prepare_benchmarks.py do not hold (Pascal Context
polygons and uncompressed RLE, the json's phase, portrait ADE images, blank lines in VOC's val.txt)."""
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.benchmarks import make_pascal_context_raw, make_voc_raw
from PIL import Image

from pixelclip.data.vocabulary import packaged_vocabulary

REPO = Path(__file__).resolve().parents[3]
CONTEXT_OUT = Path("VOCdevkit/VOC2010/annotations_detectron2")


def _script(name: str):
    """A datasets/prepare_*.py module (they import _benchmark_prep from their own folder)."""
    folder = str(REPO / "datasets")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img)


@pytest.mark.parametrize("height,width,expected", [
    (520, 600, (512, 591)),  # landscape: 600 * 512 / 520 = 590.77
    (600, 520, (591, 512)),  # portrait
    (700, 700, (512, 512)),  # square
    (512, 900, None),  # the short side does not exceed 512
    (900, 512, None),
    (300, 200, None),
])
def test_ade20k_847_resizes_the_short_side_to_512(height, width, expected):
    assert _script("prepare_ade20k_847").resized_size(height, width, 512) == expected


def test_ade20k_847_max_short_side_zero_keeps_the_size():
    assert _script("prepare_ade20k_847").resized_size(2000, 3000, 0) is None


def test_ade20k_847_image_is_resized_bilinear_and_its_label_nearest(tmp_path):
    """Column stripes 0/255: a bilinear 600 -> 591 resize blends neighbours (greys), nearest keeps 0/255;
    the label keeps only the two class ids it had."""
    prep = _script("prepare_ade20k_847")
    ade_ids = prep.read_json_list("ade847_ade_ids")
    h, w = 520, 600
    image = np.zeros((h, w, 3), np.uint8)
    image[:, 1::2] = 255
    classes = np.where(np.arange(w)[None, :] % 2 == 0, ade_ids[0], ade_ids[5]).repeat(h, 0)
    seg = np.zeros((h, w, 3), np.uint8)
    seg[..., 0] = classes // 256 * 10
    seg[..., 1] = classes % 256
    Image.fromarray(image).save(tmp_path / "ADE_val_1.png")
    Image.fromarray(seg).save(tmp_path / "ADE_val_1_seg.png")
    out_image, out_label = tmp_path / "o.png", tmp_path / "o.tif"
    prep.convert(prep.Task(outputs=[out_image, out_label], inputs={
        "image": tmp_path / "ADE_val_1.png", "seg": tmp_path / "ADE_val_1_seg.png",
        "id_map": {a: k for k, a in enumerate(ade_ids)}, "max_short_side": 512}))
    label = _read(out_label)
    assert label.shape == (512, 591) and set(np.unique(label).tolist()) == {0, 5}
    # the image is a JPEG whatever the name: compare its middle row to a bilinear resize by hand (pixel
    # centres, the weights of the two source columns around each). The JPEG coding error of the result is a
    # grey level or two on average; a nearest-neighbour resize (0s and 255s) differs from it by ~64.
    row = _read(out_image)[256, :, 0].astype(np.float64)
    centres = (np.arange(591) + 0.5) * w / 591 - 0.5  # source x of each output pixel centre
    left = np.clip(np.floor(centres).astype(int), 0, w - 1)
    right = np.clip(left + 1, 0, w - 1)
    frac = centres - np.floor(centres)
    source = image[0, :, 0].astype(np.float64)
    bilinear = (1 - frac) * source[left] + frac * source[right]
    assert np.abs(row - bilinear).mean() < 8


def _context_json(tmp_path, annos, size=(6, 8)):
    """A VOC2010 layout with one image 2008_000001 and trainval_merged.json holding ``annos``."""
    base = tmp_path / "VOCdevkit" / "VOC2010"
    (base / "JPEGImages").mkdir(parents=True)
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(base / "JPEGImages" / "2008_000001.jpg")
    image = {"image_id": 1, "file_name": "2008_000001.jpg", "height": size[0], "width": size[1], "phase": "val"}
    for ann in annos:
        ann["image_id"] = 1
    (base / "trainval_merged.json").write_text(json.dumps({"images": [image], "annos_segmentation": annos}))


def _pc459_id(name: str) -> int:
    return packaged_vocabulary("pc459").index(name) + 1


def test_pascal_context_polygons_and_uncompressed_rle_and_the_later_segment_wins(tmp_path):
    """Segments may be polygons (x, y pairs; a box with integer corners covers the pixels inside it) or
    uncompressed RLE (counts over the column-major pixels); a later segment paints over an earlier one."""
    prep = _script("prepare_pascal_context")
    pc59 = packaged_vocabulary("pc59")
    h, w = 6, 8
    rle_mask = np.zeros((h, w), np.uint8)
    rle_mask[:, 6:] = 1  # the last two columns: 6 * 6 zeros, then 12 ones (column-major)
    annos = [
        {"category_id": _pc459_id("aeroplane"), "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]},  # x 1..4, y 1..3
        {"category_id": _pc459_id("wood"), "segmentation": {"size": [h, w], "counts": [36, 12]}},
        {"category_id": _pc459_id("table"), "segmentation": [[3, 2, 7, 2, 7, 6, 3, 6]]},  # x 3..6, y 2..5: on top
    ]
    _context_json(tmp_path, annos)
    prep.main(["--root", str(tmp_path), "--tasks", "59", "60"])
    expected = np.full((h, w), 255)
    expected[1:4, 1:5] = pc59.index("aeroplane")
    expected[:, 6:] = pc59.index("wood")
    expected[2:6, 3:7] = pc59.index("diningtable")
    np.testing.assert_array_equal(_read(tmp_path / CONTEXT_OUT / "pc59_val" / "2008_000001.png"), expected)
    np.testing.assert_array_equal(_read(tmp_path / CONTEXT_OUT / "pc60_val" / "2008_000001.png"),
                                  np.where(expected == 255, 59, expected))


def test_pascal_context_validation_ids_come_from_the_json_phase_or_a_split_file(tmp_path):
    prep = _script("prepare_pascal_context")
    make_pascal_context_raw(tmp_path)  # 2008_000001, 2008_000002: phase val; 2008_000003: train
    base = tmp_path / "VOCdevkit" / "VOC2010"
    (base / "pascalcontext_val.txt").unlink()
    prep.main(["--root", str(tmp_path), "--tasks", "59"])
    assert (tmp_path / CONTEXT_OUT / "val_ids.txt").read_text() == "2008_000001\n2008_000002\n"
    assert sorted(p.name for p in (tmp_path / CONTEXT_OUT / "pc59_val").iterdir()) == [
        "2008_000001.png", "2008_000002.png"]

    split = tmp_path / "ids.txt"
    split.write_text("2008_000003\n")  # --split-file before everything else
    (base / "pascalcontext_val.txt").write_text("2008_000001\n")
    prep.main(["--root", str(tmp_path), "--tasks", "59", "--split-file", str(split)])
    assert (tmp_path / CONTEXT_OUT / "val_ids.txt").read_text() == "2008_000003\n"
    assert (tmp_path / CONTEXT_OUT / "pc59_val" / "2008_000003.png").is_file()


def test_overwrite_rewrites_outputs_that_exist(tmp_path, capsys):
    """Without --overwrite an existing output is kept (resumable); with it, it is made again."""
    prep = _script("prepare_voc")
    expected = make_voc_raw(tmp_path)
    split = tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"
    split.write_text(split.read_text() + "\n\n")  # blank lines are no ids
    prep.main(["--root", str(tmp_path)])
    rel = sorted(expected)[0]
    stale = np.zeros_like(expected[rel], dtype=np.uint8)
    Image.fromarray(stale).save(tmp_path / rel)
    prep.main(["--root", str(tmp_path)])
    np.testing.assert_array_equal(_read(tmp_path / rel), stale)
    capsys.readouterr()
    prep.main(["--root", str(tmp_path), "--overwrite"])
    assert "wrote 2, skipped 0" in capsys.readouterr().err
    for path, labels in expected.items():
        np.testing.assert_array_equal(_read(tmp_path / path), labels, err_msg=path)


@pytest.mark.parametrize("values,mode", [
    (np.array([[0, 7, 255]], np.uint8), "L"),
    (np.array([[0, 300, 65535]], np.uint16), "I;16"),
    (np.array([[0, 300, 70000]], np.int32), "I"),  # 32-bit integer TIFF
])
def test_read_label_takes_single_channel_integer_images(tmp_path, values, mode):
    prep = _script("_benchmark_prep")
    path = tmp_path / "label.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == mode
    np.testing.assert_array_equal(prep.read_label(path), values)


def test_ade20k_150_refuses_a_class_id_above_150(tmp_path):
    """ADEChallengeData2016 annotations hold 0..150; 151 would be written as label 150, outside the benchmark."""
    prep = _script("prepare_ade20k_150")
    src, out = tmp_path / "ADE_val_1.png", tmp_path / "out.png"
    Image.fromarray(np.array([[0, 150]], np.uint8)).save(src)
    prep.convert(prep.Task(outputs=[out], inputs={"label": src}))
    assert _read(out).tolist() == [[255, 149]]
    Image.fromarray(np.array([[0, 151]], np.uint8)).save(src)
    with pytest.raises(prep.LayoutError, match=r"ADE_val_1\.png: class id 151 > 150"):
        prep.convert(prep.Task(outputs=[tmp_path / "out2.png"], inputs={"label": src}))


def test_coco_stuff_refuses_a_16_bit_map(tmp_path):
    """stuffthingmaps are 8-bit; a 16-bit file is something else (e.g. a panoptic or a 459-class map)."""
    prep = _script("prepare_coco_stuff")
    src = tmp_path / "000000000139.png"
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(src)
    with pytest.raises(prep.LayoutError, match=r"000000000139\.png: expected an 8-bit stuffthingmap"):
        prep.convert(prep.Task(outputs=[tmp_path / "out.png"], inputs={"label": src}))
    assert not (tmp_path / "out.png").exists()
