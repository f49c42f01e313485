"""Label maps of the benchmarks against the datasets' official tables, written here as data:
Cityscapes label id -> train id (cityscapesScripts' helpers/labels.py), COCO-Stuff's 171 used ids
(COCO-Stuff 182 ids minus the 11 unused COCO thing ids) and the 16-bit label bounds of ADE-847 and
Pascal Context-459. Every id is checked as the preparation scripts map it, so an off-by-one fails."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import MetadataCatalog
from PIL import Image

import pixelclip.data.datasets  # noqa: F401  (registers the benchmarks)
from pixelclip.data.datasets.coco_stuff import COCO_STUFF_171_NAME, coco_stuff_used_ids
from pixelclip.evaluation import SemSegLabelLoader

REPO = Path(__file__).resolve().parents[3]

# cityscapesScripts/helpers/labels.py: (name, id, trainId) of every label; 255 = not evaluated.
CITYSCAPES_LABELS = [
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9),
    ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14),
    ("bus", 28, 15), ("caravan", 29, 255), ("trailer", 30, 255), ("train", 31, 16),
    ("motorcycle", 32, 17), ("bicycle", 33, 18), ("license plate", -1, -1),
]

# COCO category ids (1-based) that COCO-Stuff's 182 ids leave unused: street sign, hat, shoe, eye glasses,
# plate, mirror, window, desk, door, blender, hair brush. Things are 1..91, stuff 92..182.
COCO_UNUSED_1_BASED = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)


def _script(name: str):
    """A datasets/prepare_*.py module (they import _benchmark_prep from their own folder)."""
    folder = str(REPO / "datasets")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def _convert_png(tmp_path, script, values: np.ndarray) -> np.ndarray:
    """Run ``script.convert`` on an 8-bit label PNG holding ``values``; the written label."""
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(values.astype(np.uint8)).save(src)
    script.convert(script.Task(outputs=[out], inputs={"label": src}))
    return np.array(Image.open(out))


def test_cityscapes_label_ids_map_to_the_official_train_ids(tmp_path):
    prep = _script("prepare_cityscapes")
    official = {label_id: train for _, label_id, train in CITYSCAPES_LABELS if label_id >= 0}
    assert sorted(official) == list(range(34))
    ids = np.array([list(range(34)) + [255, 34]])  # 255: the byte a -1 would wrap to; 34: beyond the table
    got = _convert_png(tmp_path, prep, ids)
    assert got.dtype == np.uint8
    assert got[0, :34].tolist() == [official[i] for i in range(34)]
    assert got[0, 34:].tolist() == [255, 255]
    # license plate (-1) is never drawn into a labelIds PNG (cityscapesScripts skips negative ids); a
    # negative value is refused, not wrapped to a class
    with pytest.raises(ValueError, match="negative label values"):
        prep.remap(np.array([[-1, 7]]), prep.LABEL_TO_TRAIN_ID, 255, np.uint8)


def test_cityscapes_train_ids_name_the_registered_classes():
    names = {train: name for name, _, train in CITYSCAPES_LABELS if 0 <= train < 255}
    assert MetadataCatalog.get("cityscapes_19_val_sem_seg").stuff_classes == [names[k] for k in range(19)]


def _coco_stuff_expected():
    """1-based COCO-Stuff id -> contiguous 0..170 (ids in increasing order), built from the official lists."""
    used = [i for i in range(1, 92) if i not in COCO_UNUSED_1_BASED] + list(range(92, 183))
    assert len(used) == 171 and len(COCO_UNUSED_1_BASED) == 11
    return {coco_id: k for k, coco_id in enumerate(used)}


def test_coco_stuff_stuffthingmaps_map_to_the_171_contiguous_ids(tmp_path):
    """The stuffthingmaps PNGs store the COCO id minus one (0..181) and 255 for unlabelled."""
    expected = _coco_stuff_expected()
    prep = _script("prepare_coco_stuff")
    stored = np.array([list(range(182)) + [255, 182, 200]])
    got = _convert_png(tmp_path, prep, stored)[0].tolist()
    want = [expected.get(v + 1, 255) for v in range(182)] + [255, 255, 255]
    assert got == want
    assert [got[i - 1] for i in COCO_UNUSED_1_BASED] == [255] * 11
    # the registration's dataset ids (for prediction JSON) are the 1-based COCO ids
    meta = MetadataCatalog.get(COCO_STUFF_171_NAME)
    assert meta.stuff_dataset_id_to_contiguous_id == expected
    assert [i + 1 for i in coco_stuff_used_ids()] == sorted(expected)
    # and the class names sit at their contiguous ids: COCO 1 person, 13 stop sign, 90 toothbrush,
    # 92 banner (the first stuff id), 182 wood (the last)
    for coco_id, name in ((1, "person"), (13, "stop sign"), (90, "toothbrush"), (92, "banner"), (182, "wood")):
        assert meta.stuff_classes[expected[coco_id]] == name


def test_pascal_context_459_keeps_the_largest_id_and_refuses_one_above(tmp_path):
    """LabelMap holds 1-based ids of the 459 classes (0 unlabelled): 1 -> 0, 459 -> 458, 0 -> 65535 in a
    16-bit TIFF; 460 is not a Context-459 id and stops the conversion naming the file."""
    import scipy.io

    prep = _script("prepare_pascal_context")
    mat, out = tmp_path / "a.mat", tmp_path / "a.tif"
    scipy.io.savemat(str(mat), {"LabelMap": np.array([[0, 1, 2, 300, 458, 459]], dtype=np.uint16)})
    prep.convert_459(prep.Task(outputs=[out], inputs={"mat": mat}))
    got = np.array(Image.open(out))
    assert got.dtype == np.uint16 and got.tolist() == [[65535, 0, 1, 299, 457, 458]]
    scipy.io.savemat(str(mat), {"LabelMap": np.array([[1, 460]], dtype=np.uint16)})
    with pytest.raises(prep.LayoutError, match=r"a\.mat: class id 460 > 459"):
        prep.convert_459(prep.Task(outputs=[tmp_path / "b.tif"], inputs={"mat": mat}))


def test_ade20k_847_keeps_the_last_class_and_ignores_unknown_ids(tmp_path):
    """ADE20K's _seg.png encodes class R // 10 * 256 + G; the 847 benchmark ids map to 0..846 in the listed
    order (the last one to 846, above 255: 16-bit) and every other id to 65535."""
    prep = _script("prepare_ade20k_847")
    ade_ids = prep.read_json_list("ade847_ade_ids")
    assert len(ade_ids) == 847
    listed = set(ade_ids)
    unknown = next(i for i in range(256, 4000) if i not in listed)
    wide = next(i for i in ade_ids if i > 255)
    classes = np.array([[ade_ids[0], ade_ids[846], wide, unknown, 0]])
    seg = np.zeros(classes.shape + (3,), dtype=np.uint8)
    seg[..., 0] = classes // 256 * 10 + 3  # the units digit of R is not part of the class (// 10)
    seg[..., 1] = classes % 256
    seg[..., 2] = 77  # instance ids, unused
    image, seg_path = tmp_path / "ADE_val_1.jpg", tmp_path / "ADE_val_1_seg.png"
    Image.fromarray(np.zeros(classes.shape + (3,), np.uint8)).save(image)
    Image.fromarray(seg).save(seg_path)
    out_image, out_label = tmp_path / "o.jpg", tmp_path / "o.tif"
    prep.convert(prep.Task(outputs=[out_image, out_label], inputs={
        "image": image, "seg": seg_path, "id_map": {a: k for k, a in enumerate(ade_ids)}, "max_short_side": 0}))
    got = np.array(Image.open(out_label))
    expected_wide = ade_ids.index(wide)
    assert got.dtype == np.uint16 and got.tolist() == [[0, 846, expected_wide, 65535, 65535]]


@pytest.mark.parametrize("name,dtype,ext", [
    ("pixelclip_ade20k_full_sem_seg_freq_val_all", np.uint16, ".tif"),
    ("context_459_test_sem_seg", np.uint16, ".tif"),
    ("ade20k_150_test_sem_seg", np.uint8, ".png"),
    ("cityscapes_19_val_sem_seg", np.uint8, ".png"),
])
def test_the_evaluator_accepts_the_largest_class_id_and_refuses_one_above(tmp_path, name, dtype, ext):
    meta = MetadataCatalog.get(name)
    k = len(meta.stuff_classes)
    loader = SemSegLabelLoader(k, meta.ignore_label)
    good, bad = tmp_path / f"good{ext}", tmp_path / f"bad{ext}"
    Image.fromarray(np.array([[0, k - 1, meta.ignore_label]], dtype=dtype)).save(good)
    Image.fromarray(np.array([[0, k, meta.ignore_label]], dtype=dtype)).save(bad)
    assert loader(str(good)).tolist() == [[0, k - 1, meta.ignore_label]]
    with pytest.raises(ValueError, match=rf"label file {bad} holds class ids \[{k}\] outside 0..{k - 1}"):
        loader(str(bad))
