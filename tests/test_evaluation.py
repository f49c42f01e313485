"""pixelclip.evaluation: label reading (8/16-bit PNG, TIFF, palette), clear errors, the evaluator's
checks, and the summary table."""
import json
import logging
import math
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from fixtures.benchmarks import make_ade20k_150_miniature, one_hot_logits
from PIL import Image

from pixelclip.errors import EvalLabelError
from pixelclip.evaluation import (
    SemSegLabelLoader,
    build_sem_seg_evaluator,
    read_label_file,
    write_summary,
)


@pytest.mark.parametrize(
    "suffix,dtype,values",
    [(".png", np.uint8, [0, 7, 255]), (".png", np.uint16, [0, 300, 65535]),
     (".tif", np.uint16, [0, 846, 65535])],
)
def test_read_label_file_roundtrips(tmp_path, suffix, dtype, values):
    labels = np.array(values * 8, dtype=dtype).reshape(4, 6)
    path = tmp_path / f"label{suffix}"
    Image.fromarray(labels).save(path)
    out = read_label_file(str(path))
    assert out.dtype == np.int64 and out.shape == (4, 6)
    np.testing.assert_array_equal(out, labels.astype(np.int64))


def test_read_label_file_gives_palette_indices(tmp_path):
    labels = np.array([[0, 1, 20], [255, 15, 0]], dtype=np.uint8)
    img = Image.fromarray(labels)
    img.putpalette([(i * 37) % 256 for i in range(768)])
    img.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(read_label_file(str(tmp_path / "voc.png")), labels)


def test_read_label_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_label_file(str(missing))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="corrupt.png"):
        read_label_file(str(corrupt))
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-60])
    with pytest.raises(ValueError, match="truncated.png"):
        read_label_file(str(truncated))
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(rgb)
    with pytest.raises(ValueError, match="rgb.png.*'RGB'"):
        read_label_file(str(rgb))


def test_label_loader_checks_size_and_class_ids(tmp_path):
    path = tmp_path / "l.png"
    Image.fromarray(np.array([[0, 1], [2, 255]], dtype=np.uint8)).save(path)
    loader = SemSegLabelLoader(3, 255, {str(path): (2, 2)})
    assert loader(str(path), dtype=int).tolist() == [[0, 1], [2, 255]]
    with pytest.raises(EvalLabelError, match=r"l.png is 2×2 .* image is 3×2"):
        SemSegLabelLoader(3, 255, {str(path): (3, 2)})(str(path))
    with pytest.raises(EvalLabelError, match=r"l.png holds class ids \[2\] outside 0..1"):
        SemSegLabelLoader(2, 255)(str(path))
    several = tmp_path / "several.png"
    Image.fromarray(np.array([[254, 3], [200, 255]], dtype=np.uint8)).save(several)
    with pytest.raises(ValueError, match=r"several.png holds class ids \[3, 200, 254\] outside 0..2"):
        SemSegLabelLoader(3, 255)(str(several))
    wide = tmp_path / "wide.png"  # 16-bit ids (e.g. ADE-847): the check on the file's own type
    Image.fromarray(np.array([[0, 846], [900, 65535]], dtype=np.uint16)).save(wide)
    with pytest.raises(ValueError, match=r"wide.png holds class ids \[900\] outside 0..846"):
        SemSegLabelLoader(847, 65535)(str(wide))
    assert SemSegLabelLoader(901, 65535)(str(wide)).tolist() == [[0, 846], [900, 65535]]


def _mini(tmp_path):
    mini = make_ade20k_150_miniature(tmp_path)
    name = mini.register(f"test_eval_{uuid.uuid4().hex[:8]}")
    return mini, name, DatasetCatalog.get(name)


def test_evaluator_rejects_wrong_vocabulary_size_and_labels(tmp_path):
    mini, name, dicts = _mini(tmp_path)
    evaluator = build_sem_seg_evaluator(name, str(tmp_path / "eval"))
    evaluator.reset()
    h, w = mini.labels[0].shape
    with pytest.raises(ValueError, match="K = 150"):
        evaluator.process([dicts[0]], [{"sem_seg": torch.zeros(10, h, w)}])
    with pytest.raises(ValueError, match=r"is \(24, 30\) \(H×W\) but the image is \(24, 32\)"):
        evaluator.process([dicts[0]], [{"sem_seg": torch.zeros(150, h, 30)}])
    with pytest.raises(KeyError, match="not part of dataset"):
        evaluator.process([{"file_name": "elsewhere.jpg"}], [{"sem_seg": torch.zeros(150, h, w)}])
    # the same checks for arg-max labels (TEST.OUTPUT labels)
    with pytest.raises(ValueError, match="expected H×W"):
        evaluator.process([dicts[0]], [{"sem_seg_labels": torch.zeros(1, h, w, dtype=torch.long)}])
    with pytest.raises(ValueError, match=r"is \(24, 30\) \(H×W\) but the image is \(24, 32\)"):
        evaluator.process([dicts[0]], [{"sem_seg_labels": torch.zeros(h, 30, dtype=torch.long)}])
    with pytest.raises(ValueError, match=r"ids outside 0..149"):
        evaluator.process([dicts[0]], [{"sem_seg_labels": torch.full((h, w), 150, dtype=torch.long)}])
    negative = torch.zeros((h, w), dtype=torch.long)
    negative[3, 5] = -1
    with pytest.raises(ValueError, match=r"ids outside 0..149"):
        evaluator.process([dicts[0]], [{"sem_seg_labels": negative}])


def test_evaluator_reports_a_label_of_the_wrong_size(tmp_path):
    mini, name, dicts = _mini(tmp_path)
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(mini.label_files[0])
    evaluator = build_sem_seg_evaluator(name, str(tmp_path / "eval"))
    evaluator.reset()
    logits = one_hot_logits(mini.labels[0], 150, 255)
    with pytest.raises(ValueError, match=f"{mini.label_files[0].name} is 5×5"):
        evaluator.process([dicts[0]], [{"sem_seg": logits}])


def test_build_evaluator_needs_a_sem_seg_dataset():
    name = f"test_no_meta_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: [])
    with pytest.raises(ValueError, match="stuff_classes"):
        build_sem_seg_evaluator(name, None)


def test_write_summary_writes_json_and_markdown(tmp_path, caplog):
    results = {
        "ade20k_150_test_sem_seg": {"sem_seg": {"mIoU": 20.5, "fwIoU": 50.0, "mACC": 30.25,
                                                "pACC": 70.0, "IoU-wall": 60.0, "num_images": 2000}},
        "context_59_test_sem_seg": {"mIoU": 41.0, "fwIoU": float("nan"), "mACC": 55.5, "pACC": 80.125},
    }
    out = tmp_path / "out"
    logger = logging.getLogger("pixelclip.evaluation")
    logger.addHandler(caplog.handler)  # D2's setup_logger may stop propagation elsewhere
    caplog.set_level(logging.INFO)
    try:
        table = write_summary(results, str(out))
    finally:
        logger.removeHandler(caplog.handler)
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == list(results)
    assert summary["ade20k_150_test_sem_seg"] == {"mIoU": 20.5, "fwIoU": 50.0, "mACC": 30.25, "pACC": 70.0,
                                                  "images": 2000}
    assert summary["context_59_test_sem_seg"]["fwIoU"] is None
    assert summary["context_59_test_sem_seg"]["images"] is None
    assert (out / "summary.md").read_text() == table
    lines = table.strip().splitlines()
    header = [" Dataset                 ", "   mIoU ", "  fwIoU ", "   mACC ", "   pACC ", " images "]
    assert lines[0].split("|")[1:-1] == header
    assert len(lines) == 4 and "20.50" in lines[2] and "30.25" in lines[2] and lines[2].endswith("|   2000 |")
    assert lines[3].split("|")[2:7] == ["  41.00 ", "      - ", "  55.50 ", "  80.12 ", "      - "]
    assert table in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "summary.md"]  # no temp files
    # a second call replaces the files
    write_summary({"voc_2012_test_sem_seg": {"mIoU": 90.0}}, str(out))
    again = json.loads((out / "summary.json").read_text())
    assert list(again) == ["voc_2012_test_sem_seg"] and again["voc_2012_test_sem_seg"]["pACC"] is None
    with pytest.raises(ValueError, match="no results"):
        write_summary({}, str(out))


def test_summary_values_round_trip_through_the_evaluator(tmp_path):
    mini, name, dicts = _mini(tmp_path)
    evaluator = build_sem_seg_evaluator(name, str(tmp_path / "eval"))
    evaluator.reset()
    for d, gt in zip(dicts, mini.labels):
        evaluator.process([d], [{"sem_seg": one_hot_logits(gt, 150, 255)}])
    result = evaluator.evaluate()
    write_summary({name: result}, str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())[name]
    assert summary.pop("images") == len(dicts)  # every image of the dataset was evaluated
    assert all(math.isclose(v, 100.0) for v in summary.values())


def test_evaluator_takes_argmax_labels_with_the_same_metrics_and_json(tmp_path):
    mini, name, dicts = _mini(tmp_path)
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(150, *gt.shape, generator=g) for gt in mini.labels]
    runs = {}
    for kind in ("sem_seg", "sem_seg_labels"):
        evaluator = build_sem_seg_evaluator(name, str(tmp_path / kind))
        evaluator.reset()
        for d, lg in zip(dicts, logits):
            evaluator.process([d], [{kind: lg if kind == "sem_seg" else lg.argmax(0)}])
        runs[kind] = (evaluator.evaluate()["sem_seg"], evaluator._predictions)
    (by_logits, json_logits), (by_labels, json_labels) = runs["sem_seg"], runs["sem_seg_labels"]
    assert json.dumps(by_logits, sort_keys=True) == json.dumps(by_labels, sort_keys=True)
    assert json_logits == json_labels
    # The RLE results are D2's own encoding of the same prediction.
    from detectron2.evaluation import SemSegEvaluator

    pred = logits[0].argmax(0).numpy()
    d2 = SemSegEvaluator.encode_json_sem_seg(evaluator, pred, dicts[0]["file_name"])
    assert d2 == [r for r in json_labels if r["file_name"] == dicts[0]["file_name"]]


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 6), (33, 20)])
def test_label_rles_are_pycocotools_encodings_of_each_mask(shape):
    """Against pycocotools' own encoder, one mask at a time: labels touching the first and the last
    pixel (column-major), a label covering everything, single pixels, absent labels."""
    from pixelclip.evaluation import label_rles

    rng = np.random.default_rng(sum(shape))
    h, w = shape
    maps = [rng.integers(0, 4, shape), np.full(shape, 3), rng.integers(0, 2, shape) * 7,
            np.kron(rng.integers(0, 3, (h // 3 + 1, w // 3 + 1)), np.ones((3, 3), dtype=np.int64))[:h, :w]]
    one_pixel = np.zeros(shape, dtype=np.int64)
    one_pixel[-1, -1] = 5
    maps.append(one_pixel)
    for label_map in maps:
        labels = list(range(9))  # present and absent ones
        ours = label_rles(label_map, labels)
        expected = [mask_util.encode(np.asfortranarray((label_map == k).astype(np.uint8))[:, :, None])[0]
                    for k in labels]
        assert ours == expected


def test_boundary_iou_of_a_perfect_prediction_is_100(tmp_path):
    """The boundary confusion matrix is indexed in int64: a prediction equal to the ground truth
    scores 100 boundary IoU for every class. (D2's own ``process`` takes the index in uint8, which
    wraps around at 256: the same prediction scores less there; checked below so the docstring's claim
    stays true.)"""
    from detectron2.evaluation import SemSegEvaluator

    mini, name, dicts = _mini(tmp_path)
    h, w = mini.labels[0].shape
    blocks = np.zeros((h, w), dtype=np.uint8)
    blocks[:, : w // 2] = 3
    blocks[: h // 2, w // 2:] = 40
    blocks[h // 2:, w // 2:] = 149
    Image.fromarray(blocks).save(dicts[0]["sem_seg_file_name"])
    prediction = {"sem_seg_labels": torch.from_numpy(blocks.astype(np.int64))}
    evaluator = build_sem_seg_evaluator(name, str(tmp_path / "eval"))
    assert evaluator._compute_boundary_iou  # OpenCV is a dependency
    evaluator.reset()
    evaluator.process([dicts[0]], [prediction])
    result = evaluator.evaluate()["sem_seg"]
    classes = MetadataCatalog.get(name).stuff_classes
    for k in (3, 40, 149):
        assert result[f"BoundaryIoU-{classes[k]}"] == 100.0
    # the same prediction through D2's own process (with this plugin's numpy-2-safe label reader)
    d2 = build_sem_seg_evaluator(name, str(tmp_path / "d2"))
    d2.reset()
    SemSegEvaluator.process(d2, [dicts[0]], [{"sem_seg": one_hot_logits(blocks.astype(np.int64), 150, 255)}])
    d2_result = SemSegEvaluator.evaluate(d2)["sem_seg"]
    assert d2_result["mIoU"] == result["mIoU"] == 100.0
    assert any(not d2_result[f"BoundaryIoU-{classes[k]}"] == 100.0 for k in (3, 40, 149))
