"""PixelCLIPSemSegEvaluator's metrics against a confusion matrix counted by hand on a 2×4 image of a 3-class
dataset (rows: prediction, columns: ground truth, as Detectron2's SemSegEvaluator), and the label reader's
class-id bound on 16-bit files."""
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from pixelclip.errors import EvalLabelError
from pixelclip.evaluation import SemSegLabelLoader, build_sem_seg_evaluator

CLASSES = ["a", "b", "c"]
GT = np.array([[0, 0, 1, 255],
               [2, 1, 1, 0]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 2],
                 [2, 2, 1, 0]], dtype=np.int64)
# Pixels (gt, pred), the ignored one (255, 2) left out: (0,0) (0,1) (1,1) (2,2) (1,2) (1,1) (0,0).
#   class a: 3 in gt, 2 predicted, 2 right -> IoU 2 / (3 + 2 - 2) = 2/3, ACC 2/3
#   class b: 3 in gt, 3 predicted, 2 right -> IoU 2 / 4 = 1/2,        ACC 2/3
#   class c: 1 in gt, 2 predicted, 1 right -> IoU 1 / 2 = 1/2,        ACC 1
EXPECTED = {
    "mIoU": 100 * (2 / 3 + 1 / 2 + 1 / 2) / 3,
    "fwIoU": 100 * (3 * 2 / 3 + 3 * 1 / 2 + 1 * 1 / 2) / 7,
    "mACC": 100 * (2 / 3 + 2 / 3 + 1) / 3,
    "pACC": 100 * 5 / 7,
    "IoU-a": 100 * 2 / 3, "IoU-b": 50.0, "IoU-c": 50.0,
    "ACC-a": 100 * 2 / 3, "ACC-b": 100 * 2 / 3, "ACC-c": 100.0,
    # a 2-row image is all boundary (D2's 3×3 erosion of the zero-padded map leaves nothing): boundary IoU = IoU
    "BoundaryIoU-a": 100 * 2 / 3, "BoundaryIoU-b": 50.0, "BoundaryIoU-c": 50.0,
}


def _dataset(tmp_path):
    Image.fromarray(GT).save(tmp_path / "gt.png")
    name = f"test_eval_metrics_{uuid.uuid4().hex[:8]}"
    dicts = [{"file_name": str(tmp_path / "img.jpg"), "sem_seg_file_name": str(tmp_path / "gt.png"),
              "height": 2, "width": 4}]
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(stuff_classes=CLASSES, ignore_label=255, evaluator_type="sem_seg")
    return name, dicts[0]


@pytest.mark.parametrize("kind", ["sem_seg", "sem_seg_labels"])
def test_metrics_of_a_confusion_matrix_counted_by_hand(tmp_path, kind):
    name, record = _dataset(tmp_path)
    evaluator = build_sem_seg_evaluator(name, str(tmp_path / "eval"), distributed=False)
    evaluator.reset()
    pred = torch.from_numpy(PRED)
    output = {"sem_seg": torch.nn.functional.one_hot(pred, 3).permute(2, 0, 1).float()} if kind == "sem_seg" \
        else {"sem_seg_labels": pred}
    evaluator.process([record], [output])
    result = evaluator.evaluate()["sem_seg"]
    for key, value in EXPECTED.items():
        assert result[key] == pytest.approx(value, rel=1e-12), key
    assert result["num_images"] == 1
    assert sorted(r["category_id"] for r in evaluator._predictions) == [0, 1, 2]  # the predicted classes


def test_a_16_bit_label_of_the_first_id_past_the_classes_is_refused(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.array([[0, 846], [847, 65535]], dtype=np.uint16)).save(path)
    with pytest.raises(EvalLabelError, match=r"wide.png holds class ids \[847\] outside 0..846"):
        SemSegLabelLoader(847, 65535)(str(path))
    assert SemSegLabelLoader(848, 65535)(str(path)).tolist() == [[0, 846], [847, 65535]]
