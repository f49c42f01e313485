"""The export against the key layout CAT-Seg's own code gives a tiny CLIP (fixtures/catseg_clip_tiny_layout.json,
recorded from CAT-Seg 6d3a188's build_model), Detectron2's non-strict loading, and the after-loading check."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import open_clip
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from torch import nn

from pixelclip.clip.dense import vit_dense_features
from pixelclip_catseg.export import CATSegExportError, catseg_state_dict, export_catseg
from pixelclip_catseg.layout import CATSEG_CLIP_PREFIX as P, CATSEG_CLIPS, merge_attention
from pixelclip_catseg.verify import CATSegWeightsError, assert_model_holds_export, compare_with_export
from tests.conftest import make_tiny_cfg

HERE = Path(__file__).resolve().parent
FIXTURE = json.loads((HERE / "fixtures" / "catseg_clip_tiny_layout.json").read_text())
TINY = "PixelCLIP-CATSeg-Test-ViT"
PROJECT = HERE.parents[2] / "projects" / "CAT-Seg"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny PixelCLIP checkpoint (fixture's architecture, QuickGELU) whose student and teacher were 'trained'."""
    folder = tmp_path_factory.mktemp("catseg")
    (folder / "configs").mkdir()
    (folder / "configs" / f"{TINY}.json").write_text(json.dumps(FIXTURE["open_clip_config"]))
    wide = dict(FIXTURE["open_clip_config"], vision_cfg=dict(FIXTURE["open_clip_config"]["vision_cfg"], image_size=96))
    (folder / "configs" / f"{TINY}-96.json").write_text(json.dumps(wide))
    open_clip.add_model_config(folder / "configs")
    torch.manual_seed(0)
    model = build_model(make_tiny_cfg(TINY)).eval()
    with torch.no_grad():
        for p in model.backbone.clip_model.visual.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for p in model.teacher.encoder.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = folder / "model_final.pth"
    torch.save({"model": model.state_dict(), "iteration": 3}, path)
    return str(path), model


class _Node(nn.Module):
    pass


def _catseg_like(seed: int = 1) -> nn.Module:
    """A module whose parameters carry exactly the fixture's names and shapes (CAT-Seg's CLIP as its build_model
    makes it, random like a fresh clip.load), plus two of CAT-Seg's non-CLIP parameters."""
    torch.manual_seed(seed)
    root = _Node()
    for key, shape in list(FIXTURE["keys"].items()) + [("upsample1.weight", [128, 256, 2, 2]),
                                                      ("sem_seg_head.predictor.transformer.conv1.weight", [4, 4])]:
        *names, last = key.split(".")
        node = root
        for name in names:
            if name not in node._modules:
                node.add_module(name, _Node())
            node = node._modules[name]
        node.register_parameter(last, nn.Parameter(torch.randn(shape)))
    return root


def _load_like_catseg(model: nn.Module, weights: str) -> nn.Module:
    DetectionCheckpointer(model).resume_or_load(weights, resume=False)  # CAT-Seg's train_net.py call
    return model


def test_export_has_exactly_catsegs_keys_and_shapes(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    report = export_catseg(ckpt, str(tmp_path / "w.pth"), clip="custom", model_name=TINY)
    sd = torch.load(tmp_path / "w.pth", weights_only=True)["model"]
    assert {k: list(v.shape) for k, v in sd.items()} == FIXTURE["keys"]
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert report["num_tensors"] == 70 and report["split_attention_blocks"] == 4  # 2 image + 2 text blocks


@pytest.mark.parametrize("teacher", [False, True])
def test_export_values_are_the_checkpoints(checkpoint, tmp_path, teacher):
    ckpt, model = checkpoint
    export_catseg(ckpt, str(tmp_path / "w.pth"), clip="custom", model_name=TINY, use_teacher=teacher)
    sd = torch.load(tmp_path / "w.pth", weights_only=True)["model"]
    clip = model.backbone.clip_model.state_dict()
    visual = {"visual." + k: v for k, v in model.teacher.encoder.state_dict().items()} if teacher else clip
    for block in ("visual.transformer.resblocks.1", "transformer.resblocks.0"):
        source = (visual if block.startswith("visual") else clip)[block + ".attn.in_proj_weight"]
        d = source.shape[1]
        assert torch.equal(sd[P + block + ".attn.q_proj_weight"], source[:d])
        assert torch.equal(sd[P + block + ".attn.k_proj_weight"], source[d:2 * d])
        assert torch.equal(sd[P + block + ".attn.v_proj_weight"], source[2 * d:])
    assert torch.equal(sd[P + "visual.conv1.weight"], visual["visual.conv1.weight"])
    assert torch.equal(sd[P + "token_embedding.weight"], clip["token_embedding.weight"])  # the original text tower


def test_detectron2_loads_it_and_the_check_agrees(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    export = str(tmp_path / "w.pth")
    export_catseg(ckpt, export, clip="custom", model_name=TINY)
    fresh = _catseg_like()
    with pytest.raises(CATSegWeightsError, match="70 values differ"):  # as built, before loading
        assert_model_holds_export(fresh, export)
    report = assert_model_holds_export(_load_like_catseg(fresh, export), export)
    assert report.checked == 70 and report.max_abs_diff == 0.0


def test_the_check_names_what_detectron2_loaded_silently(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    export_catseg(ckpt, str(tmp_path / "w.pth"), clip="custom", model_name=TINY)
    good = torch.load(tmp_path / "w.pth", weights_only=True)["model"]
    # the open_clip (packed) layout under CAT-Seg's prefix: Detectron2 only logs the in_proj keys as unused
    packed = {P + k: v for k, v in merge_attention({k[len(P):]: v for k, v in good.items()}).items()}
    torch.save({"model": packed}, tmp_path / "packed.pth")
    model = _load_like_catseg(_catseg_like(), str(tmp_path / "packed.pth"))
    with pytest.raises(CATSegWeightsError) as e:
        assert_model_holds_export(model, str(tmp_path / "packed.pth"))
    text = str(e.value)
    assert "4 export keys the model lacks" in text and P + "visual.transformer.resblocks.0.attn.in_proj_weight" in text
    assert "12 model CLIP keys the export lacks" in text and "attn.q_proj_weight" in text
    # a position embedding of another grid: Detectron2 skips it (a warning) and keeps the built one
    other = dict(good, **{P + "visual.positional_embedding": torch.randn(37, 128)})
    torch.save({"model": other}, tmp_path / "grid.pth")
    report = compare_with_export(_load_like_catseg(_catseg_like(), str(tmp_path / "grid.pth")).state_dict(),
                                 str(tmp_path / "grid.pth"))
    assert report.shapes == [P + "visual.positional_embedding: model (17, 128) vs export (37, 128)"]
    assert report.checked == 69 and not report.values
    # DDP-wrapped models name their parameters module.<...>
    wrapped = {"module." + k: v for k, v in _load_like_catseg(_catseg_like(), str(tmp_path / "w.pth")).state_dict().items()}
    assert assert_model_holds_export(wrapped, str(tmp_path / "w.pth")).checked == 70


def test_export_refuses_gelu_and_wrong_sizes(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    out = tmp_path / "w.pth"
    with pytest.raises(CATSegExportError, match="runs GELU"):
        export_catseg(ckpt, str(out), clip="custom", model_name="PixelCLIP-Tiny-ViT")  # GELU architecture
    with pytest.raises(CATSegExportError, match=r"does not fit CAT-Seg's ViT-B/16: width 128 \(CAT-Seg's ViT-B/16: 768\)"):
        export_catseg(ckpt, str(out), clip="ViT-B/16", model_name=TINY)
    assert not out.exists()


def test_resized_positions_compute_what_pixelclip_computed(checkpoint):
    _, model = checkpoint
    clip = model.backbone.clip_model
    spec = dataclasses.replace(CATSEG_CLIPS["ViT-B/16"], width=128, layers=2, patch=16, positions=37)  # 6x6 grid
    with pytest.raises(CATSegExportError, match="--resize-positions"):
        catseg_state_dict(clip.state_dict(), spec)
    sd = catseg_state_dict(clip.state_dict(), spec, resize=True)
    assert sd[P + "visual.positional_embedding"].shape == (37, 128)
    wide = open_clip.create_model(TINY + "-96").eval()  # 96 px: a 6x6 grid, no interpolation at run time
    wide.load_state_dict(merge_attention({k[len(P):]: v for k, v in sd.items()}), strict=True)
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():  # PixelCLIP interpolated 4x4 -> 6x6 on the fly: the same numbers
        torch.testing.assert_close(vit_dense_features(wide.visual, images), vit_dense_features(clip.visual, images),
                                   atol=0, rtol=0)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tools(checkpoint, tmp_path, capsys):
    ckpt, _ = checkpoint
    out = tmp_path / "w.pth"
    assert _tool("export_catseg").main(["--pixelclip-checkpoint", ckpt, "--output", str(out), "--clip", "custom",
                                        "--model-name", TINY]) == 0
    assert json.loads(Path(str(out) + ".report.json").read_text())["num_tensors"] == 70
    verify = _tool("verify_catseg")
    loaded = tmp_path / "loaded.pth"
    torch.save(_load_like_catseg(_catseg_like(), str(out)).state_dict(), loaded)
    assert verify.main(["--model-state", str(loaded), "--export", str(out)]) == 0
    assert "OK: 70 tensors" in capsys.readouterr().out
    torch.save({"model": _catseg_like().state_dict()}, tmp_path / "fresh.pth")
    assert verify.main(["--model-state", str(tmp_path / "fresh.pth"), "--export", str(out)]) == 1
    assert "70 values differ" in capsys.readouterr().err
    assert verify.main(["--model-state", str(tmp_path / "nope.pth"), "--export", str(out)]) == 1
    assert "model state file not found" in capsys.readouterr().err


def test_half_precision_weights_are_written_in_float32():
    """CAT-Seg's CLIP runs in fp32 (``CATSegPredictor`` calls ``.float()``): an fp16 state dict goes out as the
    same values in float32, with the packed q/k/v split into rows [0:D], [D:2D], [2D:3D]."""
    torch.manual_seed(0)
    w = torch.randn(6, 2).half()
    sd = {"visual.transformer.resblocks.0.attn.in_proj_weight": w, "logit_scale": torch.tensor(2.5).half()}
    out = catseg_state_dict(sd)
    assert all(v.dtype == torch.float32 for v in out.values())
    stem = P + "visual.transformer.resblocks.0.attn."
    for name, rows in (("q", slice(0, 2)), ("k", slice(2, 4)), ("v", slice(4, 6))):
        assert torch.equal(out[stem + f"{name}_proj_weight"], w[rows].float())
    assert torch.equal(out[P + "logit_scale"], torch.tensor(2.5))


def test_a_nan_in_the_model_is_a_difference():
    """max |model - export| is NaN where the model holds a NaN: that tensor is listed, whatever ``atol``."""
    export = {"model": {P + "visual.proj": torch.ones(2, 3), P + "logit_scale": torch.tensor(1.0)}}
    model = {P + "visual.proj": torch.tensor([[1.0, float("nan"), 1.0], [1.0, 1.0, 1.0]]),
             P + "logit_scale": torch.tensor(1.0)}
    report = compare_with_export(model, export, atol=1.0)
    assert report.checked == 2 and not report.ok
    assert report.values == [P + "visual.proj: max |diff| nan"]
    with pytest.raises(CATSegWeightsError, match="1 values differ"):
        assert_model_holds_export(model, export)
