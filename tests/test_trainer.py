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


def _eval_cfg(names, tmp_path, workers: int = 0):
    """The tiny model's config evaluating ``names`` at a 64-px short side, results under ``tmp_path/out``."""
    cfg = make_tiny_cfg()
    cfg.DATASETS.TEST = tuple(names)
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    return cfg


def test_trainer_test_evaluates_with_labels_and_matches_the_logits_path(tmp_path):
    names = [make_ade20k_150_miniature(tmp_path).register(f"test_tr_ade_{uuid.uuid4().hex[:8]}"),
             make_voc_20_miniature(tmp_path).register(f"test_tr_voc_{uuid.uuid4().hex[:8]}")]
    cfg = _eval_cfg(names, tmp_path)
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
    cfg = _eval_cfg(names, tmp_path)
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


def _training_cfg(tmp_path, **overrides):
    """A tiny config training on a 2-image SA-1B folder (tests/tools/test_train_net.py's layout)."""
    from pixelclip.data.datasets.sa1b import register_sa1b
    from tests.tools.test_train_net import make_sa1b_folder

    name = f"test_tr_sa1b_{uuid.uuid4().hex[:8]}"
    register_sa1b(name, str(make_sa1b_folder(tmp_path, num_images=2, size=64) / "sa1b"))
    cfg = make_tiny_cfg(**overrides)
    cfg.DATASETS.TRAIN = (name,)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.CROP.ENABLED = False
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    return cfg


def test_amp_precision_and_masks_at_the_mask_resolution_from_the_loader(tmp_path):
    import pytest

    from pixelclip.errors import ConfigError
    from pixelclip.preflight import check_amp

    cfg = _training_cfg(tmp_path, **{"SOLVER.AMP.ENABLED": True, "SOLVER.AMP.PRECISION": "bfloat16"})
    trainer = Trainer(cfg)  # D2 builds an AMPTrainer (its steps need CUDA; building it does not)
    assert trainer._trainer.precision == torch.bfloat16 and not trainer._trainer.grad_scaler.is_enabled()
    batch = next(iter(trainer.data_loader))  # the loader's masks are already 32×32 (MASK_RESOLUTION), images 64×64
    assert all(x["instances"].gt_masks.tensor.shape[-2:] == (32, 32) and x["image"].shape[-2:] == (64, 64)
               for x in batch)
    with pytest.raises(ConfigError, match="SOLVER.AMP.ENABLED trains with CUDA autocast, but MODEL.DEVICE is cpu"):
        check_amp(cfg)  # train_net refuses AMP on a CPU run before it starts
    cfg.SOLVER.AMP.PRECISION = "fp8"
    cfg.MODEL.DEVICE = "cuda"
    with pytest.raises(ConfigError, match="SOLVER.AMP.PRECISION 'fp8'"):
        check_amp(cfg)
    fp16 = Trainer(_training_cfg(tmp_path / "b", **{"SOLVER.AMP.ENABLED": True}))
    assert fp16._trainer.precision == torch.float16  # the default: D2's, with its loss scaler


def test_a_failed_dataset_shuts_its_loader_workers_down_before_the_next_dataset(tmp_path):
    """The failed loader's iterator is freed when its dataset fails, not by a later garbage
    collection that may run inside a worker forked for the next dataset (seen in CI as
    "AssertionError: can only test a child process" printed by the iterator's __del__)."""
    import gc

    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    ade = make_ade20k_150_miniature(tmp_path)
    data = ade.image_files[1].read_bytes()
    ade.image_files[1].write_bytes(data[: len(data) * 85 // 100])  # decoding fails in the worker
    names = [ade.register(f"test_tr_ade_{uuid.uuid4().hex[:8]}"),
             make_voc_20_miniature(tmp_path).register(f"test_tr_voc_{uuid.uuid4().hex[:8]}")]
    cfg = _eval_cfg(names, tmp_path, workers=1)
    model = build_model(cfg).eval()
    live_iterators = []
    original = Trainer._test_one.__func__

    def count():  # without a garbage collection
        return sum(isinstance(o, _MultiProcessingDataLoaderIter) for o in gc.get_objects())

    def test_one(cls, cfg, model, net, name, evaluator):
        live_iterators.append(count())  # the iterators alive when each dataset starts
        return original(cls, cfg, model, net, name, evaluator)

    gc.collect()
    before = count()  # other tests' live ones
    gc.disable()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Trainer, "_test_one", classmethod(test_one))
            with pytest.raises(EvaluationError, match=f"cannot decode test image {ade.image_files[1]}"):
                Trainer.test(cfg, model)
    finally:
        gc.enable()
    assert live_iterators == [before, before]


def test_labels_output_needs_every_evaluator_of_a_group_to_take_labels_and_restores_the_models_setting():
    from detectron2.evaluation import DatasetEvaluators

    model = build_model(make_tiny_cfg())

    class NeedsLogits:
        pass

    class TakesLabels:
        accepts_labels = True

    with labels_output(model, DatasetEvaluators([TakesLabels(), NeedsLogits()])):
        assert model.test_output == "logits"  # one evaluator reads sem_seg: the logits stay
    with labels_output(model, DatasetEvaluators([TakesLabels(), TakesLabels()])):
        assert model.test_output == "labels"
    assert model.test_output == "logits"
    model.test_output = "labels"  # TEST.OUTPUT labels: left as it was after the block
    with labels_output(model, TakesLabels()):
        assert model.test_output == "labels"
    assert model.test_output == "labels"
