"""The Detectron2 trainer of PixelCLIP: D2's DefaultTrainer with PixelCLIP's builders."""
import gc
import logging
import os
import traceback
import weakref
from collections import OrderedDict
from contextlib import contextmanager

import torch
from detectron2.data import MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.data.build import _train_loader_from_config
from detectron2.data.common import DatasetFromList
from detectron2.engine import DefaultTrainer, HookBase
from detectron2.engine import defaults as d2_defaults
from detectron2.engine.defaults import create_ddp_model
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import build_checkpointer
from .data import build_mapper, build_test_mapper
from .data.checks import check_test_datasets
from .data.mappers.mask_resolution import MaskResolutionMapper
from .data.skips import SkipAwareMapDataset, SkipCounter, format_skips
from .data.vocabulary import check_vocabulary
from .errors import ConfigError, EvaluationError, PixelCLIPError, one_line
from .solver import build_optimizer
from .utils.cli import debug_enabled

logger = logging.getLogger(__name__)


def _release_loader(error: BaseException) -> None:
    """Free the failed dataset's loader now. The error's traceback holds the frames that hold the
    loader's iterator (in a reference cycle); left to the garbage collector, the iterator may be
    collected inside a worker forked for the next dataset, where shutting its workers down fails
    ("can only test a child process")."""
    traceback.clear_frames(error.__traceback__)
    error.__traceback__ = None
    gc.collect()


class _UserErrorsInOneLine(logging.Filter):
    """D2's train loop logs any exception with its traceback ("Exception during training:"); for
    the package's own errors (e.g. no usable training sample) the message is the useful part."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PixelCLIPError) and not debug_enabled():
            record.msg = f"{record.getMessage()} {one_line(error)}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


logging.getLogger("detectron2.engine.train_loop").addFilter(_UserErrorsInOneLine())


AMP_PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def amp_precision(cfg) -> torch.dtype:
    """The autocast dtype of ``SOLVER.AMP.PRECISION`` (``float16`` with loss scaling, or ``bfloat16``)."""
    name = str(cfg.SOLVER.AMP.PRECISION)
    if name not in AMP_PRECISIONS:
        raise ConfigError(f"SOLVER.AMP.PRECISION '{name}' is not a precision AMP training knows",
                          f"use one of {', '.join(AMP_PRECISIONS)}")
    return AMP_PRECISIONS[name]


def create_ddp_model_any_device(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """D2's ``create_ddp_model``, except that a CPU model (gloo) is wrapped without ``device_ids`` (D2
    passes the local rank, a CUDA device)."""
    if comm.get_world_size() > 1 and next(model.parameters()).device.type == "cpu":
        kwargs.setdefault("device_ids", None)
    return create_ddp_model(model, **kwargs)


@contextmanager
def _ddp_on_any_device():
    """Within the block, ``DefaultTrainer.__init__``'s call of ``create_ddp_model`` (looked up in
    ``detectron2.engine.defaults``) is :func:`create_ddp_model_any_device`."""
    original = d2_defaults.create_ddp_model
    d2_defaults.create_ddp_model = create_ddp_model_any_device
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = original


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


class SkipReport(HookBase):
    """At the end of training, one line with the number of skipped training samples per reason,
    summed over the data-loader workers (and over the ranks when the run completed)."""

    def __init__(self, counter: SkipCounter):
        self.counter = counter

    def after_train(self):
        totals = self.counter.totals()
        scope = "in this process and its data-loader workers"
        completed = self.trainer.iter >= self.trainer.max_iter
        if comm.get_world_size() > 1 and completed:  # every rank is here: gather
            gathered = comm.all_gather(totals)
            totals = {k: sum(t[k] for t in gathered) for k in totals}
            scope = f"over {comm.get_world_size()} ranks and their data-loader workers"
        elif comm.get_world_size() > 1:
            scope = f"on rank {comm.get_rank()} and its data-loader workers"
        if comm.is_main_process() or not completed:
            logger.info("Skipped training samples %s: %s", scope, format_skips(totals, self.counter.first_paths))


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with PixelCLIP's mapper, optimizer, evaluator and per-dataset vocabularies;
    checkpoints load through :class:`~pixelclip.checkpoint.PixelCLIPCheckpointer` (refuses partial
    loads, writes atomically); skipped training samples are counted and reported."""

    def __init__(self, cfg):
        if not logging.getLogger("pixelclip").handlers:  # used as a library, without tools/train_net.py
            setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="pixelclip", abbrev_name="pixelclip")
        with _ddp_on_any_device():  # DDP for CPU models (gloo) too
            super().__init__(cfg)
        if cfg.SOLVER.AMP.ENABLED:  # D2 builds an AMPTrainer with float16: the precision SOLVER.AMP.PRECISION names
            self._trainer.precision = amp_precision(cfg)
            if self._trainer.precision == torch.bfloat16:  # bfloat16 has float32's range: no loss scaling
                self._trainer.grad_scaler = torch.amp.GradScaler(enabled=False)

    def build_hooks(self):
        """D2's hooks, checkpointing with :class:`~pixelclip.checkpoint.PixelCLIPCheckpointer` (it
        replaces ``DefaultTrainer``'s, which ``resume_or_load`` and the periodic checkpointer use), and
        the report of skipped training samples at the end."""
        self.checkpointer = build_checkpointer(self.cfg, self._trainer.model, self.cfg.OUTPUT_DIR,
                                               trainer=weakref.proxy(self))
        hooks = super().build_hooks()
        counter = getattr(self._trainer.data_loader, "pixelclip_skip_counter", None)
        if counter is not None:
            hooks.append(SkipReport(counter))
        return hooks

    @classmethod
    def build_train_loader(cls, cfg):
        """D2's train loader over :class:`~pixelclip.data.skips.SkipAwareMapDataset`: skipped
        samples are counted per reason across workers, and a set where no sample can be used
        stops with the counts instead of D2's ``Sample larger than population``."""
        mapper = build_mapper(cfg, is_train=True)
        counter = SkipCounter(cfg.DATALOADER.NUM_WORKERS)
        if hasattr(mapper, "skip_counter"):
            mapper.skip_counter = counter
        if cfg.MODEL.META_ARCHITECTURE == "PixelCLIP":  # masks at MASK_RESOLUTION in the workers, not after the copy
            mapper = MaskResolutionMapper(mapper, cfg.MODEL.PIXELCLIP.MASK_RESOLUTION)
        kwargs = _train_loader_from_config(cfg, mapper=mapper)
        dataset = kwargs["dataset"]
        if isinstance(dataset, list):
            dataset = DatasetFromList(dataset, copy=False)
        kwargs.update(dataset=SkipAwareMapDataset(dataset, mapper), mapper=None)
        loader = build_detection_train_loader(**kwargs)
        try:
            loader.pixelclip_skip_counter = counter
        except AttributeError:  # a loader type that takes no attributes: no report at the end
            pass
        return loader

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = build_test_mapper(cfg, dataset_name)
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
        return build_sem_seg_evaluator(dataset_name, output_folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate every dataset of ``DATASETS.TEST`` with its own vocabulary (``stuff_classes``) and
        write one summary table (``summary.json`` / ``summary.md`` in ``OUTPUT_DIR``).

        All datasets' files are checked before the first one runs (one message for all problems).
        In a single process, a dataset that fails on the package's own errors (an image that
        cannot be decoded, ...) is reported and the others are still evaluated and summarised;
        an :class:`~pixelclip.errors.EvaluationError` naming the failed ones ends the call."""
        net = model.module if isinstance(model, DistributedDataParallel) else model
        check_test_datasets(cfg.DATASETS.TEST)
        results, failures = OrderedDict(), OrderedDict()
        for idx, name in enumerate(cfg.DATASETS.TEST):
            try:
                evaluator = evaluators[idx] if evaluators is not None else None
                results[name] = cls._test_one(cfg, model, net, name, evaluator)
            except PixelCLIPError as e:
                if comm.get_world_size() > 1:  # the other ranks wait for this one: stop them all
                    raise
                failures[name] = one_line(e)
                logger.error("%s was not evaluated: %s", name, failures[name])
                _release_loader(e)
        if comm.is_main_process() and any(results.values()):
            from .evaluation import write_summary

            write_summary({k: v.get("sem_seg", v) for k, v in results.items() if v}, cfg.OUTPUT_DIR)
        if failures:
            done = [k for k, v in results.items() if v]
            kept = (f"the results of the other {len(done)} are in {os.path.join(cfg.OUTPUT_DIR, 'summary.json')}"
                    if done else "no dataset was evaluated")
            raise EvaluationError(
                f"{len(failures)} of {len(cfg.DATASETS.TEST)} test datasets could not be evaluated: "
                + "; ".join(f"{k}: {v}" for k, v in failures.items()),
                f"fix them as said and evaluate them again (DATASETS.TEST); {kept}")
        if len(results) == 1:
            return list(results.values())[0]
        return results

    @classmethod
    def _test_one(cls, cfg, model, net, name: str, evaluator):
        classes = MetadataCatalog.get(name).get("stuff_classes", None)
        if classes and hasattr(net, "set_vocabulary"):
            net.set_vocabulary(check_vocabulary(classes, f"stuff_classes of {name}"))
        single = cfg.clone()
        single.defrost()
        single.DATASETS.TEST = (name,)
        single.freeze()
        if evaluator is None:
            try:
                evaluator = cls.build_evaluator(single, name)
            except NotImplementedError:
                evaluator = None  # D2's test() warns and skips the dataset
        with labels_output(net, evaluator):
            return super().test(single, model, None if evaluator is None else [evaluator])
