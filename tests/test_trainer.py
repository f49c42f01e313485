"""pixelclip.trainer: evaluation through Trainer.test (per-dataset vocabularies, labels output)."""
import json
import uuid

import numpy as np
import pytest
import torch
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from fixtures.benchmarks import make_ade20k_150_miniature, make_voc_20_miniature
from PIL import Image
from tests.conftest import make_tiny_cfg

from pixelclip.errors import EvaluationError
from pixelclip.trainer import Trainer, labels_output


def test_trainer_test_evaluates_with_labels_and_matches_the_logits_path(tmp_path):
    names = [make_ade20k_150_miniature(tmp_path).register(f"test_tr_ade_{uuid.uuid4().hex[:8]}"),
             make_voc_20_miniature(tmp_path).register(f"test_tr_voc_{uuid.uuid4().hex[:8]}")]
    cfg = make_tiny_cfg()
    cfg.DATASETS.TEST = tuple(names)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    seen = []
    original = model.inference
    model.inference = lambda batch: seen.append(model.test_output) or original(batch)

    results = Trainer.test(cfg, model)
    assert set(seen) == {"labels"} and model.test_output == "logits"  # switched for the run only
    for name in names:
        model.set_vocabulary(list(Trainer.build_evaluator(cfg, name)._class_names))
        reference = inference_on_dataset(model, Trainer.build_test_loader(cfg, name), Trainer.build_evaluator(cfg, name))
        assert json.dumps(results[name]["sem_seg"], sort_keys=True) == json.dumps(reference["sem_seg"], sort_keys=True)
    assert set(json.loads((tmp_path / "out" / "summary.json").read_text())) == set(names)


def test_a_label_id_out_of_range_fails_its_dataset_and_the_others_are_summarised(tmp_path):
    """Like an undecodable image: the dataset is reported as not evaluated (the file and the ids
    named), the other datasets are evaluated and written to the summary."""
    ade = make_ade20k_150_miniature(tmp_path)
    names = [ade.register(f"test_tr_ade_{uuid.uuid4().hex[:8]}"),
             make_voc_20_miniature(tmp_path).register(f"test_tr_voc_{uuid.uuid4().hex[:8]}")]
    labels = np.array(Image.open(ade.label_files[1]))
    labels[2, 3] = 200  # ADE20K-150 has ids 0..149 and ignore 255
    Image.fromarray(labels).save(ade.label_files[1])
    cfg = make_tiny_cfg()
    cfg.DATASETS.TEST = tuple(names)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    model = build_model(cfg).eval()
    with pytest.raises(EvaluationError) as error:
        Trainer.test(cfg, model)
    assert str(error.value).startswith(
        f"1 of 2 test datasets could not be evaluated: {names[0]}: label file {ade.label_files[1]} holds class ids "
        "[200] outside 0..149 (ignore_label 255) — make the dataset's label files again with its "
        "datasets/prepare_*.py script"), str(error.value)
    assert str(error.value).endswith(f"the results of the other 1 are in {tmp_path / 'out' / 'summary.json'}")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary) == [names[1]] and summary[names[1]]["images"] == 2


def test_labels_output_leaves_models_and_evaluators_that_need_logits_alone():
    model = build_model(make_tiny_cfg())

    class NeedsLogits:
        pass

    class TakesLabels:
        accepts_labels = True

    with labels_output(model, NeedsLogits()):
        assert model.test_output == "logits"
    with labels_output(model, None):
        assert model.test_output == "logits"
    linear = torch.nn.Linear(2, 2)  # a model without test_output is not given one
    with labels_output(linear, TakesLabels()):
        assert not hasattr(linear, "test_output")
    assert not hasattr(linear, "test_output")
    # an evaluator that takes labels switches the model for the block only, also when the block fails
    try:
        with labels_output(model, TakesLabels()):
            assert model.test_output == "labels"
            raise KeyError("evaluation failed")
    except KeyError:
        pass
    assert model.test_output == "logits"
