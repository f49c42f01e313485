"""Zero-shot mask classification (projects/MaskClassification): the META_ARCH with an oracle through
the evaluator, and dense / crop modes end to end through the project's train_net.py --eval-only."""
import functools
import importlib.util
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser
from detectron2.evaluation import inference_on_dataset

from pixelclip.evaluation import build_sem_seg_evaluator
from pixelclip.trainer import Trainer  # the project runs PixelCLIP's trainer; its test mapper is registered
from pixelclip_maskcls import add_mask_classification_config
from pixelclip_maskcls.zero_shot_mask_classifier import ZeroShotMaskClassifier
from tests.conftest import make_tiny_cfg
from tests.fixtures.benchmarks import make_ade20k_150_miniature, miou_of_predictions
from tests.projects.mask_classification.mask_proposal_stub import MaskClassifierTestProposals

ROOT = Path(__file__).resolve().parents[3]
PROJECT = ROOT / "projects" / "MaskClassification"
CONFIGS = PROJECT / "configs"


@functools.lru_cache(maxsize=None)
def _train_net():
    """The project's train_net.py as a module (loaded once: its main)."""
    spec = importlib.util.spec_from_file_location("pixelclip_maskcls_train_net", PROJECT / "train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------ the model
def _oracle(labels_by_file, confusion=None):
    """Names each mask by the majority ground-truth label under it (optionally confused)."""
    confusion = confusion or {}

    def score(x, masks, vocabulary):
        labels = torch.as_tensor(labels_by_file[x["file_name"]])
        probs = torch.zeros(len(masks), len(vocabulary))
        for n, m in enumerate(masks.cpu()):
            values = labels[m]
            values = values[values < len(vocabulary)]
            c = int(torch.mode(values).values)
            probs[n, confusion.get(c, c)] = 1.0
        return probs

    return score


def _expected_miou(labels, num_classes, ignore, confusion):
    """Independent mIoU (%) of predicting ``confusion(gt)`` at every labelled pixel."""
    gt = np.concatenate([lab.ravel() for lab in labels])
    gt = gt[gt != ignore]
    pred = np.array([confusion.get(int(c), int(c)) for c in gt])
    ious = []
    for c in range(num_classes):
        inter = np.sum((gt == c) & (pred == c))
        union = np.sum((gt == c) | (pred == c))
        if union:
            ious.append(inter / union)
    return 100 * float(np.mean(ious))


@pytest.fixture
def ade_mini(tmp_path):
    mini = make_ade20k_150_miniature(tmp_path / "datasets", num_images=3)
    name = mini.register("test_mc_ade150_" + uuid.uuid4().hex[:8])
    return mini, name


def _eval_cfg(name, model_name="PixelCLIP-Tiny-ViT", **overrides):
    cfg = make_tiny_cfg(model_name, config_funcs=(add_mask_classification_config,), **overrides)
    cfg.MODEL.META_ARCHITECTURE = "ZeroShotMaskClassifier"
    cfg.INPUT.TEST_MAPPER_NAME = "mask_classification"
    cfg.INPUT.MIN_SIZE_TEST = 48  # the images are resized, masks and predictions stay at the original size
    cfg.DATASETS.TEST = (name,)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.TEST.IMS_PER_BATCH = 2
    return cfg


@pytest.mark.parametrize("confusion", [{}, {7: 0}, {7: 149, 0: 7}])
def test_oracle_on_ground_truth_masks(ade_mini, tmp_path, confusion):
    mini, name = ade_mini
    cfg = _eval_cfg(name)
    labels_by_file = {str(f): lab for f, lab in zip(mini.image_files, mini.labels)}
    model = ZeroShotMaskClassifier(cfg, score_fn=_oracle(labels_by_file, confusion)).eval()
    loader = Trainer.build_test_loader(cfg, name)
    evaluator = build_sem_seg_evaluator(name, str(tmp_path / "eval"))
    results = inference_on_dataset(model, loader, evaluator)["sem_seg"]
    expected = _expected_miou(mini.labels, mini.num_classes, mini.ignore_label, confusion)
    if not confusion:
        assert expected == 100.0
    assert results["mIoU"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("mode", ["dense", "crop"])
def test_clip_scoring_modes(ade_mini, mode):
    _, name = ade_mini
    cfg = _eval_cfg(name, **{"MODEL.MASK_CLASSIFIER.MODE": mode, "MODEL.MASK_CLASSIFIER.PANOPTIC_ON": True})
    torch.manual_seed(0)
    model = ZeroShotMaskClassifier(cfg).eval()
    batch = [Trainer.build_test_loader(cfg, name).dataset[0]]
    out = model(batch)[0]
    masks = batch[0]["masks"]
    h, w = batch[0]["height"], batch[0]["width"]
    assert batch[0]["image"].shape[-2:] != (h, w) and masks.shape[-2:] == (h, w)
    assert out["sem_seg"].shape == (150, h, w)
    assert out["mask_probs"].shape == (len(masks), 150)
    torch.testing.assert_close(out["mask_probs"].sum(1), torch.ones(len(masks)))
    pan, infos = out["panoptic_seg"]
    assert pan.shape == (h, w) and len(infos) == len(masks)  # ground-truth masks do not overlap
    covered = masks.any(0)
    argmax = out["sem_seg"].argmax(0)
    for n, m in enumerate(masks):  # every pixel of a mask carries its mask's class
        assert (argmax[m] == out["mask_probs"][n].argmax()).all()
    assert covered.sum() < h * w  # ignore pixels were filled by dense scores
    with pytest.raises(RuntimeError, match="no training step"):
        model.train()(batch)


def test_proposal_model_masks_and_ensemble(ade_mini):
    _, name = ade_mini
    cfg = _eval_cfg(name)
    h, w = 24, 32
    model = ZeroShotMaskClassifier(cfg, proposal_model=MaskClassifierTestProposals(), alpha=0.0, beta=0.0,
                                   seen_classes=None).eval()
    image = torch.randint(0, 255, (3, 48, 64), dtype=torch.uint8)
    batch = [{"image": image, "height": h, "width": w, "file_name": "x.jpg"}]
    out = model(batch)[0]
    assert out["sem_seg"].argmax(0)[0, 0] == 5 and out["sem_seg"].argmax(0)[0, -1] == 9  # β = 0: in-vocabulary wins
    model.beta = 1.0  # β = 1: CLIP alone on unseen classes
    clip_only = ZeroShotMaskClassifier(cfg, proposal_model=MaskClassifierTestProposals(), use_proposal_scores=False).eval()
    clip_only.backbone.load_state_dict(model.backbone.state_dict())
    torch.testing.assert_close(model(batch)[0]["mask_probs"], clip_only(batch)[0]["mask_probs"])


# ------------------------------------------------------------------------------------ train_net --eval-only
def _tiny_opts(name, out_dir, model_name="PixelCLIP-Tiny-ViT"):
    return ["MODEL.DEVICE", "cpu", "MODEL.PIXELCLIP.CLIP_MODEL_NAME", model_name, "MODEL.PIXELCLIP.CLIP_PRETRAINED", "",
            "MODEL.PIXELCLIP.CLIP_RESOLUTION", "(64, 64)", "MODEL.PIXELCLIP.NUM_PROMPTS", "8",
            "MODEL.PIXELCLIP.TEST.TEMPLATES", "single", "MODEL.MASK_CLASSIFIER.POOL_RESOLUTION", "16",
            "INPUT.MIN_SIZE_TEST", "48", "DATASETS.TEST", f"('{name}',)", "DATALOADER.NUM_WORKERS", "0",
            "TEST.IMS_PER_BATCH", "2", "OUTPUT_DIR", str(out_dir)]


@pytest.mark.parametrize("config,mode", [("gt_dense_vitb.yaml", "dense"), ("gt_crop_vitb.yaml", "crop")])
def test_train_net_eval_only_on_ade_miniature(ade_mini, tmp_path, config, mode):
    _, name = ade_mini
    train_net = _train_net()
    args = default_argument_parser().parse_args(
        ["--eval-only", "--config-file", str(CONFIGS / config)] + _tiny_opts(name, tmp_path / mode))
    results = train_net.main(args)
    mini = ade_mini[0]
    predictions = json.loads((tmp_path / mode / "inference" / name / "sem_seg_predictions.json").read_text())
    labels = {str(f): gt for f, gt in zip(mini.image_files, mini.labels)}
    expected = miou_of_predictions(predictions, labels, mini.num_classes, mini.ignore_label)
    assert results["sem_seg"]["mIoU"] == pytest.approx(expected, abs=1e-6)
    summary = json.loads((tmp_path / mode / "summary.json").read_text())
    assert set(summary) == {name}


def test_train_net_eval_only_on_synthetic_world(tmp_path):
    from pixelclip.data.datasets.synthetic import register_synthetic_world
    from pixelclip.synthetic.storage import WorldSpec

    prefix = "test_mc_synth_" + uuid.uuid4().hex[:8]
    register_synthetic_world(prefix, str(tmp_path / "synthetic"), WorldSpec(num_train=1, num_val=3))
    name = f"{prefix}_val_sem_seg"
    train_net = _train_net()
    runs = {}
    for mode in ("dense", "crop"):
        args = default_argument_parser().parse_args(
            ["--eval-only", "--config-file", str(CONFIGS / "synthetic_gt_dense.yaml")]
            + _tiny_opts(name, tmp_path / mode, "PixelCLIP-Synthetic-ViT")
            + ["MODEL.PIXELCLIP.CLIP_RESOLUTION", "(96, 96)", "INPUT.MIN_SIZE_TEST", "96",
               "MODEL.MASK_CLASSIFIER.MODE", mode])
        runs[mode] = train_net.main(args)["sem_seg"]["mIoU"]
        predictions = json.loads((tmp_path / mode / "inference" / name / "sem_seg_predictions.json").read_text())
        meta = MetadataCatalog.get(name)
        labels = {d["file_name"]: np.array(Image.open(d["sem_seg_file_name"])).astype(np.int64)
                  for d in DatasetCatalog.get(name)}
        expected = miou_of_predictions(predictions, labels, len(meta.stuff_classes), meta.ignore_label)
        assert runs[mode] == pytest.approx(expected, abs=1e-6), mode
    spec = importlib.util.spec_from_file_location("mc_compare", PROJECT / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    table = compare.table(compare.read_runs([f"dense={tmp_path / 'dense'}", f"crop={tmp_path / 'crop'}"]))
    assert f"| {name} | {runs['dense']:.2f} | {runs['crop']:.2f} |" in table


def test_pixelclip_checkpoint_loads_through_model_weights(ade_mini, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    _, name = ade_mini
    torch.manual_seed(4)
    pixelclip = build_model(make_tiny_cfg())
    with torch.no_grad():
        for p in pixelclip.backbone.clip_model.visual.parameters():
            p.add_(0.05)
    DetectionCheckpointer(pixelclip, save_dir=str(tmp_path)).save("model_final")
    classifier = build_model(_eval_cfg(name))
    DetectionCheckpointer(classifier).resume_or_load(str(tmp_path / "model_final.pth"), resume=False)
    ours = classifier.backbone.clip_model.state_dict()
    for k, v in pixelclip.backbone.clip_model.state_dict().items():
        assert torch.equal(ours[k], v), k
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(classifier.backbone(images)["clip_dense"], pixelclip.backbone(images)["clip_dense"])


def test_train_net_eval_only_with_a_proposal_model_from_its_config(ade_mini, tmp_path):
    _, name = ade_mini
    proposal_cfg = tmp_path / "proposals.yaml"
    proposal_cfg.write_text("MODEL:\n  META_ARCHITECTURE: MaskClassifierTestProposals\n  STUB_PROPOSALS:\n"
                            "    CLASSES: (3, 4)\nVERSION: 2\n")
    args = default_argument_parser().parse_args(
        ["--eval-only", "--config-file", str(CONFIGS / "gt_dense_vitb.yaml")] + _tiny_opts(name, tmp_path / "run")
        + ["MODEL.MASK_CLASSIFIER.MASK_SOURCE", "model", "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.CONFIG_FILE",
           str(proposal_cfg), "MODEL.MASK_CLASSIFIER.PROPOSAL_MODEL.CONFIG_FUNCS",
           "['tests.projects.mask_classification.mask_proposal_stub.add_stub_proposal_config']",
           "MODEL.MASK_CLASSIFIER.ALPHA", "0.0", "MODEL.MASK_CLASSIFIER.BETA", "0.0"])
    results = _train_net().main(args)["sem_seg"]
    # two half-image masks named 3 and 4 by the in-vocabulary scores alone: every class of the ground
    # truth (0, 7, 149) gets IoU 0, and 3, 4 are false positives
    assert results["mIoU"] == 0.0
