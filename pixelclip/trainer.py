"""The Detectron2 trainer of PixelCLIP: D2's DefaultTrainer with PixelCLIP's builders."""
import logging
import os
import weakref
from collections import OrderedDict
from contextlib import contextmanager

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer
from detectron2.engine.defaults import create_ddp_model
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from .data import MAPPER_REGISTRY, build_mapper
from .data.test_mapper import SemanticTestMapper
from .solver import build_optimizer

logger = logging.getLogger(__name__)


def create_ddp_model_any_device(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """D2's ``create_ddp_model``, except that a CPU model (gloo) is wrapped without ``device_ids``."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).device.type == "cpu":
        return DistributedDataParallel(model, **kwargs)
    return create_ddp_model(model, **kwargs)


@contextmanager
def labels_output(model: torch.nn.Module, evaluator):
    """While evaluating with an evaluator that takes arg-max labels (``accepts_labels``), have a model
    with ``test_output`` (PixelCLIP) return ``sem_seg_labels`` instead of K×H×W logits: the same
    predictions (pixelclip/modeling/postprocess.py) without upsampling every class map."""
    parts = getattr(evaluator, "_evaluators", [evaluator])  # DatasetEvaluators holds several
    if evaluator is None or not hasattr(model, "test_output") or not all(
        getattr(e, "accepts_labels", False) for e in parts
    ):
        yield
        return
    previous, model.test_output = model.test_output, "labels"
    try:
        yield
    finally:
        model.test_output = previous


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with PixelCLIP's mapper, optimizer, evaluator and per-dataset vocabularies."""

    def __init__(self, cfg):
        # DefaultTrainer.__init__, but DDP-wrapping that also works for CPU models (gloo).
        super(DefaultTrainer, self).__init__()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model_any_device(model, broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=build_mapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = SemanticTestMapper(cfg)
        if cfg.INPUT.TEST_MAPPER_NAME:  # hook (issue 7): a registered test mapper, e.g. "mask_classification"
            single = cfg.clone()
            single.defrost()
            single.DATASETS.TEST = (dataset_name,)  # the mapper reads this dataset's metadata
            mapper = MAPPER_REGISTRY.get(cfg.INPUT.TEST_MAPPER_NAME)(single, False)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper, batch_size=cfg.TEST.IMS_PER_BATCH)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
        if evaluator_type != "sem_seg":
            raise NotImplementedError(f"no evaluator for dataset '{dataset_name}' (evaluator_type={evaluator_type})")
        from .evaluation import build_sem_seg_evaluator

        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_sem_seg_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate every dataset of ``DATASETS.TEST`` with its own vocabulary (``stuff_classes``) and
        write one summary table (``summary.json`` / ``summary.md`` in ``OUTPUT_DIR``)."""
        net = model.module if isinstance(model, DistributedDataParallel) else model
        results = OrderedDict()
        for idx, name in enumerate(cfg.DATASETS.TEST):
            classes = MetadataCatalog.get(name).get("stuff_classes", None)
            if classes and hasattr(net, "set_vocabulary"):
                net.set_vocabulary(classes)
            single = cfg.clone()
            single.defrost()
            single.DATASETS.TEST = (name,)
            single.freeze()
            evaluator = evaluators[idx] if evaluators is not None else None
            if evaluator is None:
                try:
                    evaluator = cls.build_evaluator(single, name)
                except NotImplementedError:
                    evaluator = None  # D2's test() warns and skips the dataset
            with labels_output(net, evaluator):
                res = super().test(single, model, None if evaluator is None else [evaluator])
            results[name] = res
        if comm.is_main_process() and any(results.values()):
            from .evaluation import write_summary

            write_summary({k: v.get("sem_seg", v) for k, v in results.items() if v}, cfg.OUTPUT_DIR)
        if len(results) == 1:
            return list(results.values())[0]
        return results
