"""Benchmark registrations: names, metadata, loading miniatures in their real layouts, and D2's
SemSegEvaluator on them (oracle -> 100 mIoU; constant prediction -> an independently computed score)."""
import os
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from fixtures.benchmarks import MINIATURE_MAKERS, SIZES, one_hot_logits

import pixelclip  # noqa: F401  (registers the datasets)
from pixelclip.data.datasets._sem_seg import datasets_root
from pixelclip.data.datasets.ade20k import register_ade20k_150
from pixelclip.errors import DatasetError
from pixelclip.evaluation import build_sem_seg_evaluator

# conventional name -> (number of classes, ignore label, label file extension)
EXPECTED = {
    "ade20k_150_test_sem_seg": (150, 255, "png"),
    "pixelclip_ade20k_full_sem_seg_freq_val_all": (847, 65535, "tif"),  # ZegFormer holds the bare name
    "context_59_test_sem_seg": (59, 255, "png"),
    "context_459_test_sem_seg": (459, 65535, "tif"),
    "context_60_test_sem_seg": (60, 255, "png"),
    "coco_2017_test_stuff_all_sem_seg": (171, 255, "png"),
    "voc_2012_test_sem_seg": (20, 255, "png"),
    "voc_2012_test_background_sem_seg": (21, 255, "png"),
    "cityscapes_19_val_sem_seg": (19, 255, "png"),
}


def _unique(prefix: str) -> str:
    return f"test_{prefix}_{uuid.uuid4().hex[:8]}"


def test_conventional_names_are_registered_with_metadata():
    root = os.path.abspath(datasets_root())
    assert set(EXPECTED) == set(MINIATURE_MAKERS)
    for name, (k, ignore, ext) in EXPECTED.items():
        assert name in DatasetCatalog.list(), name
        meta = MetadataCatalog.get(name)
        assert len(meta.stuff_classes) == k and len(set(meta.stuff_classes)) == k, name
        assert meta.ignore_label == ignore
        assert meta.evaluator_type == "sem_seg"
        assert os.path.abspath(meta.image_root).startswith(root)
        assert os.path.abspath(meta.sem_seg_root).startswith(root)
    assert MetadataCatalog.get("voc_2012_test_background_sem_seg").stuff_classes[-1] == "background"
    assert MetadataCatalog.get("context_60_test_sem_seg").stuff_classes[-1] == "background"
    coco = MetadataCatalog.get("coco_2017_test_stuff_all_sem_seg")
    assert coco.stuff_dataset_id_to_contiguous_id[1] == 0  # person
    assert coco.stuff_dataset_id_to_contiguous_id[182] == 170  # wood


def test_detectron2_builtin_cityscapes_is_left_alone():
    meta = MetadataCatalog.get("cityscapes_fine_sem_seg_val")
    assert meta.evaluator_type == "cityscapes_sem_seg"  # D2's registration, not replaced


def test_registration_is_lazy_and_errors_name_the_missing_folder(tmp_path):
    name = _unique("lazy")
    register_ade20k_150(str(tmp_path / "nowhere"), name=name)  # no listing at registration
    with pytest.raises(FileNotFoundError, match="prepare_ade20k_150.py") as err:
        DatasetCatalog.get(name)
    assert "nowhere" in str(err.value)
    # a second registration of a taken name leaves the first in place (no error; a logged notice)
    assert register_ade20k_150(str(tmp_path), name=name) == []
    with pytest.raises(FileNotFoundError, match="nowhere"):
        DatasetCatalog.get(name)


def test_label_without_image_is_an_error(tmp_path):
    mini = MINIATURE_MAKERS["ade20k_150_test_sem_seg"](tmp_path)
    mini.image_files[1].unlink()
    name = mini.register(_unique("noimage"))
    with pytest.raises(FileNotFoundError, match=mini.label_files[1].name):
        DatasetCatalog.get(name)


def _constant_metrics(labels, num_classes, ignore, c):
    """mIoU / fwIoU / mACC / pACC (%) of predicting class ``c`` everywhere, from a confusion
    matrix computed here (rows: ground truth, columns: prediction)."""
    gt = np.concatenate([lab[lab != ignore].ravel() for lab in labels]).astype(np.int64)
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (gt, np.full_like(gt, c)), 1)
    gt_count, pred_count, tp = conf.sum(1), conf.sum(0), np.diag(conf)
    present = gt_count > 0
    iou = tp[present] / (gt_count + pred_count - tp)[present]
    acc = tp[present] / gt_count[present]
    freq = gt_count[present] / gt_count.sum()
    return {
        "mIoU": 100 * iou.mean(),
        "fwIoU": 100 * (freq * iou).sum(),
        "mACC": 100 * acc.mean(),
        "pACC": 100 * tp.sum() / gt_count.sum(),
    }, 100 * tp[c] / (gt_count + pred_count - tp)[c]


def _run(evaluator, mini, dicts, make_logits):
    evaluator.reset()
    for d, gt in zip(dicts, mini.labels):
        evaluator.process([d], [{"sem_seg": make_logits(gt)}])
    return evaluator.evaluate()["sem_seg"]


@pytest.mark.parametrize("conventional_name", list(EXPECTED))
def test_miniature_registers_loads_and_evaluates(conventional_name, tmp_path):
    k, ignore, ext = EXPECTED[conventional_name]
    mini = MINIATURE_MAKERS[conventional_name](tmp_path / "data")
    assert (mini.num_classes, mini.ignore_label) == (k, ignore)
    name = mini.register(_unique(conventional_name))

    dicts = DatasetCatalog.get(name)
    assert [d["file_name"] for d in dicts] == [str(p) for p in mini.image_files]
    assert [d["sem_seg_file_name"] for d in dicts] == [str(p) for p in mini.label_files]
    assert [(d["height"], d["width"]) for d in dicts] == list(SIZES[: len(dicts)])
    assert all(p.suffix == f".{ext}" for p in mini.label_files)
    meta = MetadataCatalog.get(name)
    assert meta.stuff_classes == MetadataCatalog.get(conventional_name).stuff_classes
    assert (meta.ignore_label, meta.evaluator_type) == (ignore, "sem_seg")

    evaluator = build_sem_seg_evaluator(name, str(tmp_path / "eval"))
    oracle = _run(evaluator, mini, dicts, lambda gt: one_hot_logits(gt, k, ignore))
    for metric in ("mIoU", "fwIoU", "mACC", "pACC"):
        assert oracle[metric] == pytest.approx(100.0), metric

    # constant prediction of the largest class present (> 255 for the 16-bit benchmarks)
    c = int(max(lab[lab != ignore].max() for lab in mini.labels))
    constant = _run(
        evaluator, mini, dicts,
        lambda gt: torch.nn.functional.one_hot(torch.full(gt.shape, c), k).permute(2, 0, 1).float(),
    )
    expected, iou_c = _constant_metrics(mini.labels, k, ignore, c)
    for metric, value in expected.items():
        assert constant[metric] == pytest.approx(value), metric
    assert constant[f"IoU-{meta.stuff_classes[c]}"] == pytest.approx(iou_c)
    if ignore == 65535:
        assert c > 255  # a 16-bit class id was scored


def test_cityscapes_loader_ignores_the_raw_label_ids(tmp_path):
    mini = MINIATURE_MAKERS["cityscapes_19_val_sem_seg"](tmp_path)
    assert list(tmp_path.rglob("*_gtFine_labelIds.png"))
    dicts = DatasetCatalog.get(mini.register(_unique("city")))
    assert all(d["sem_seg_file_name"].endswith("_gtFine_labelTrainIds.png") for d in dicts)
    assert len(dicts) == len(mini.label_files)


def test_images_and_labels_must_pair_both_ways(tmp_path):
    """An image without its label file would be left out of the mIoU without a word."""
    mini = MINIATURE_MAKERS["ade20k_150_test_sem_seg"](tmp_path, num_images=3)
    mini.label_files[1].unlink()  # an image whose label is missing
    stray = mini.label_files[0].with_name("ADE_val_00000009.png")  # a label whose image is missing
    stray.write_bytes(mini.label_files[0].read_bytes())
    name = mini.register(_unique("pairs"))
    with pytest.raises(DatasetError) as err:
        DatasetCatalog.get(name)
    message = str(err.value)
    image_root = os.path.dirname(mini.image_files[0])
    assert message.startswith(f"{name}: images and labels do not pair up: 1 of 3 images under {image_root} "
                              f"have no label file under {os.path.dirname(mini.label_files[0])} "
                              f"(e.g. {mini.image_files[1]}); 1 of 3 label files are without an image ")
    assert str(stray) in message and "\n" not in message
    assert message.endswith("— every image needs its label file: re-run datasets/prepare_ade20k_150.py "
                            "(datasets/README.md), or remove the stray files")


def test_a_shared_image_folder_is_paired_through_the_split_list(tmp_path):
    """VOC's JPEGImages also holds training images: those are fine, a listed image without label is not."""
    mini = MINIATURE_MAKERS["voc_2012_test_sem_seg"](tmp_path)
    base = tmp_path / "VOCdevkit" / "VOC2012"
    (base / "JPEGImages" / "2008_000099.jpg").write_bytes(mini.image_files[0].read_bytes())  # a training image
    name = mini.register(_unique("voc_split"))
    assert len(DatasetCatalog.get(name)) == 2
    split = base / "ImageSets" / "Segmentation" / "val.txt"
    split.write_text(split.read_text() + "2008_000099\n")
    name = mini.register(_unique("voc_split"))
    with pytest.raises(DatasetError, match=r"1 of 3 images listed in .*val.txt have no label file .*"
                                           r"2008_000099.jpg"):
        DatasetCatalog.get(name)
    split.unlink()
    name = mini.register(_unique("voc_split"))
    with pytest.raises(DatasetError, match=r"no list of the split's images \(.*val.txt\) — write one image id"):
        DatasetCatalog.get(name)
