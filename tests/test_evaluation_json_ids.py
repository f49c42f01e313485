"""sem_seg_predictions.json (pixelclip.evaluation): each RLE carries the dataset's own category id
(``stuff_dataset_id_to_contiguous_id`` inverted, Detectron2's SemSegEvaluator convention), and the
RLEs, decoded by pycocotools, give back the prediction pixel for pixel."""
import json
import uuid

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from fixtures.benchmarks import make_coco_stuff_171_miniature
from PIL import Image

from pixelclip.evaluation import build_sem_seg_evaluator


def _evaluate(name, out_dir, predictions):
    """Run the evaluator over ``{file_name: H×W int64 prediction}``; -> (metrics, the written JSON)."""
    evaluator = build_sem_seg_evaluator(name, str(out_dir), distributed=False)
    evaluator.reset()
    for d in DatasetCatalog.get(name):
        pred = predictions[d["file_name"]]
        evaluator.process([d], [{"sem_seg_labels": torch.from_numpy(pred)}])
    metrics = evaluator.evaluate()["sem_seg"]
    return metrics, json.loads((out_dir / "sem_seg_predictions.json").read_text())


def _decode(entries, file_name, shape, dataset_to_contiguous):
    """The H×W map rebuilt from the RLEs of one file (-1 where no RLE covers a pixel); each pixel is
    covered at most once."""
    out = np.full(shape, -1, dtype=np.int64)
    for e in entries:
        if e["file_name"] != file_name:
            continue
        mask = mask_util.decode(e["segmentation"]).astype(bool)
        assert mask.shape == shape
        assert (out[mask] == -1).all(), "two RLEs cover one pixel"
        out[mask] = dataset_to_contiguous[e["category_id"]]
    return out


def test_json_ids_are_the_datasets_own_ids_of_a_hand_made_mapping(tmp_path):
    """Dataset ids 7, 3, 12 for contiguous 0, 1, 2 (neither contiguous nor in the same order); a
    prediction with a class the ground truth lacks (and the other way round), on a non-square image."""
    name = "test_json_ids_" + uuid.uuid4().hex[:8]
    to_contiguous = {7: 0, 3: 1, 12: 2}  # dataset id -> contiguous id
    h, w = 5, 7
    gt = np.zeros((h, w), dtype=np.uint8)
    gt[:, 4:] = 2
    gt[0, 0] = 255
    Image.fromarray(gt).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((h, w), dtype=np.uint8)).save(tmp_path / "a.jpg")
    dicts = [{"file_name": str(tmp_path / "a.jpg"), "sem_seg_file_name": str(tmp_path / "a.png"),
              "height": h, "width": w}]
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(stuff_classes=["a", "b", "c"], ignore_label=255,
                                  stuff_dataset_id_to_contiguous_id=to_contiguous, evaluator_type="sem_seg")
    try:
        pred = np.zeros((h, w), dtype=np.int64)
        pred[1:, 2:5] = 1  # class 1 is in the prediction only, class 2 in the ground truth only
        pred[-1, -1] = 1  # the last pixel in column-major (RLE) order
        metrics, entries = _evaluate(name, tmp_path / "eval", {dicts[0]["file_name"]: pred})
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert sorted(e["category_id"] for e in entries) == [3, 7]  # the predicted classes 1 and 0, as dataset ids
    np.testing.assert_array_equal(_decode(entries, dicts[0]["file_name"], (h, w), to_contiguous), pred)
    # by hand, over the 34 pixels that are not ignored: class 0 (a): gt 19 (columns 0-3), pred 21, common
    # 11 (columns 0-1 and row 0 of columns 2-3) -> IoU 11 / 29; class 2 (c): gt 15, pred 0 -> IoU 0; class 1 is
    # not in the ground truth
    assert abs(metrics["mIoU"] - 100 * (11 / 29 + 0) / 2) < 1e-9


def test_json_ids_of_coco_stuff_are_cocos_category_ids(tmp_path):
    """COCO-Stuff-171 as registered: contiguous 0, 11, 80, 170 are COCO ids 1 (person), 13 (stop sign),
    92 (banner), 182 (wood) in COCO's official category table (1-based, with 11 retired thing ids)."""
    mini = make_coco_stuff_171_miniature(tmp_path / "datasets")
    name = mini.register("test_json_coco_" + uuid.uuid4().hex[:8])
    classes = MetadataCatalog.get(name).stuff_classes
    assert [classes[k] for k in (0, 11, 80, 170)] == ["person", "stop sign", "banner", "wood"]
    official = {1: 0, 13: 11, 92: 80, 182: 170}  # COCO category id -> contiguous id
    predictions = {}
    for f, gt in zip(mini.image_files, mini.labels):
        pred = np.zeros(gt.shape, dtype=np.int64)
        h, w = gt.shape
        pred[: h // 2, w // 3:] = 11
        pred[h // 2:, : w // 2] = 80
        pred[-3:, -3:] = 170
        predictions[str(f)] = pred
    _, entries = _evaluate(name, tmp_path / "eval", predictions)
    assert {e["category_id"] for e in entries} == set(official)
    for f, pred in predictions.items():
        np.testing.assert_array_equal(_decode(entries, f, pred.shape, official), pred)
