"""Export of the fine-tuned CLIP (open_clip, OpenAI layout, merge into other checkpoints) and import
of the authors' release layout (pixelclip/export/, tools/export_clip.py)."""
import importlib.util
import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from detectron2.modeling import build_model

from pixelclip.clip.dense import dense_features
from pixelclip.export import (
    ExportError,
    build_clip_from_weights,
    clip_state_dict,
    convert_release_state_dict,
    export_open_clip,
    export_openai,
    load_release_checkpoint,
    merge_visual_weights,
)
from tests.conftest import make_tiny_cfg

ROOT = Path(__file__).resolve().parents[1]

# ViT widths that are multiples of 64 (the head size OpenAI's loader assumes), QuickGELU as OpenAI's.
OPENAI_TEST_CONFIG = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "head_width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


def _trained_model(model_name: str, seed: int = 0):
    """A tiny PixelCLIP whose student and teacher image encoders differ from the initialisation."""
    torch.manual_seed(seed)
    model = build_model(make_tiny_cfg(model_name))
    with torch.no_grad():
        for p in model.backbone.clip_model.visual.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for p in model.teacher.encoder.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def _save(model, path: Path) -> str:
    torch.save({"model": model.state_dict(), "iteration": 7}, path)
    return str(path)


@pytest.mark.parametrize("model_name", ["PixelCLIP-Tiny-ViT", "PixelCLIP-Tiny-ConvNeXt"])
def test_open_clip_export_loads_strictly_with_identical_features(tmp_path, model_name):
    model = _trained_model(model_name)
    ckpt = _save(model, tmp_path / "model_final.pth")
    out = tmp_path / "exported.pt"
    report = export_open_clip(ckpt, model_name, str(out))
    assert report["num_tensors"] == len(model.backbone.clip_model.state_dict())

    loaded, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(out))  # strict=True inside
    loaded.eval()
    ours = model.backbone.clip_model
    images = torch.randn(2, 3, 64, 64)
    tokens = open_clip.get_tokenizer(model_name)(["a photo of a cat", "grass"], context_length=32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images), ours.encode_image(images), atol=1e-6, rtol=0)
        torch.testing.assert_close(loaded.encode_text(tokens), ours.encode_text(tokens), atol=1e-6, rtol=0)
        torch.testing.assert_close(dense_features(loaded.visual, images), dense_features(ours.visual, images),
                                   atol=1e-6, rtol=0)
    # and with strict loading spelled out
    fresh = open_clip.create_model(model_name)
    open_clip.load_checkpoint(fresh, str(out), strict=True)


def test_teacher_export_and_text_tower_is_original(tmp_path):
    model = _trained_model("PixelCLIP-Tiny-ViT")
    ckpt = _save(model, tmp_path / "model_final.pth")
    out = tmp_path / "teacher.pt"
    export_open_clip(ckpt, "PixelCLIP-Tiny-ViT", str(out), use_teacher=True)
    sd = torch.load(out, weights_only=True)
    for k, v in model.teacher.encoder.state_dict().items():
        assert torch.equal(sd["visual." + k], v), k
    for k, v in model.backbone.clip_model.state_dict().items():
        if not k.startswith("visual."):
            assert torch.equal(sd[k], v), k
    assert not torch.equal(sd["visual.conv1.weight"], model.backbone.clip_model.visual.conv1.weight)


def test_export_refuses_wrong_architecture(tmp_path):
    ckpt = _save(_trained_model("PixelCLIP-Tiny-ViT"), tmp_path / "m.pth")
    with pytest.raises(ExportError, match="does not fit the open_clip architecture"):
        export_open_clip(ckpt, "PixelCLIP-Tiny-ConvNeXt", str(tmp_path / "x.pt"))
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(ExportError, match="not found"):
        export_open_clip(str(tmp_path / "missing.pth"), "PixelCLIP-Tiny-ViT", str(tmp_path / "x.pt"))


def test_openai_layout_export_loads_in_openai_builder(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "PixelCLIP-Test-OpenAI-ViT.json").write_text(json.dumps(OPENAI_TEST_CONFIG))
    open_clip.add_model_config(tmp_path / "configs")
    model = _trained_model("PixelCLIP-Test-OpenAI-ViT")
    ckpt = _save(model, tmp_path / "m.pth")
    out = tmp_path / "openai.pt"
    export_openai(ckpt, "PixelCLIP-Test-OpenAI-ViT", str(out))
    sd = torch.load(out, weights_only=True)
    assert "visual.proj" in sd and "visual.transformer.resblocks.1.attn.in_proj_weight" in sd and "ln_final.weight" in sd
    # OpenAI's loader (as open_clip implements it) builds the architecture from the tensors and loads strictly
    rebuilt = open_clip.model.build_model_from_openai_state_dict(dict(sd), quick_gelu=True, cast_dtype=None).float()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # that loader stores fp16 weights, hence the tolerance
        torch.testing.assert_close(rebuilt.encode_image(images), model.backbone.clip_model.encode_image(images),
                                   atol=2e-2, rtol=2e-2)
    # ConvNeXt has no OpenAI layout
    ckpt2 = _save(_trained_model("PixelCLIP-Tiny-ConvNeXt"), tmp_path / "c.pth")
    with pytest.raises(ExportError, match="only for ViT"):
        export_openai(ckpt2, "PixelCLIP-Tiny-ConvNeXt", str(tmp_path / "c.pt"))


def _target_checkpoint(prefix: str, model_name: str, seed: int = 5) -> dict:
    """Another framework's D2 checkpoint holding an (original) CLIP under ``prefix``."""
    torch.manual_seed(seed)
    clip = open_clip.create_model(model_name)
    model = {prefix + k: v.clone() for k, v in clip.state_dict().items()}
    model["sem_seg_head.predictor.class_embed.weight"] = torch.randn(8, 4)
    model["sem_seg_head.pixel_decoder.conv.weight"] = torch.randn(4, 4, 3, 3).half()
    return {"model": model, "iteration": 90000, "__author__": "someone"}


@pytest.mark.parametrize("prefix_arg,prefix", [("fcclip", "backbone.clip_model."),
                                               ("sem_seg_head.predictor.clip_model.", "sem_seg_head.predictor.clip_model.")])
def test_merge_changes_exactly_the_visual_keys(tmp_path, prefix_arg, prefix):
    model = _trained_model("PixelCLIP-Tiny-ConvNeXt")
    ckpt = _save(model, tmp_path / "pixelclip.pth")
    target = _target_checkpoint(prefix, "PixelCLIP-Tiny-ConvNeXt")
    torch.save(target, tmp_path / "target.pth")
    report = merge_visual_weights(ckpt, str(tmp_path / "target.pth"), prefix_arg, str(tmp_path / "merged.pth"),
                                  model_name="PixelCLIP-Tiny-ConvNeXt")
    merged = torch.load(tmp_path / "merged.pth", weights_only=True)
    assert merged["iteration"] == 90000 and merged["__author__"] == "someone"
    assert set(merged["model"]) == set(target["model"])
    ours = model.backbone.clip_model.state_dict()
    expected_replaced = sorted(prefix + k for k in ours if k.startswith("visual."))
    assert report.replaced == expected_replaced
    for key, old in target["model"].items():  # every tensor compared
        new = merged["model"][key]
        assert new.dtype == old.dtype and new.shape == old.shape, key
        if key in expected_replaced:
            assert torch.equal(new, ours[key[len(prefix):]]), key
        else:
            assert torch.equal(new, old), key


def test_merge_refuses_mismatches_and_writes_nothing(tmp_path):
    ckpt = _save(_trained_model("PixelCLIP-Tiny-ConvNeXt"), tmp_path / "pixelclip.pth")
    target = _target_checkpoint("backbone.clip_model.", "PixelCLIP-Tiny-ConvNeXt")
    key = "backbone.clip_model.visual.head.proj.weight"
    target["model"][key] = torch.zeros(3, 3)
    torch.save(target, tmp_path / "bad_shape.pth")
    with pytest.raises(ExportError, match="shapes differ"):
        merge_visual_weights(ckpt, str(tmp_path / "bad_shape.pth"), "fcclip", str(tmp_path / "out.pth"))
    with pytest.raises(ExportError, match=r"under \['backbone.clip_model.'\]: give that as --prefix"):  # wrong prefix
        merge_visual_weights(ckpt, str(tmp_path / "bad_shape.pth"), "zegformer", str(tmp_path / "out.pth"))
    vit_target = _target_checkpoint("backbone.clip_model.", "PixelCLIP-Tiny-ViT")
    torch.save(vit_target, tmp_path / "vit.pth")
    with pytest.raises(ExportError, match="refusing"):  # another architecture
        merge_visual_weights(ckpt, str(tmp_path / "vit.pth"), "fcclip", str(tmp_path / "out.pth"))
    assert not (tmp_path / "out.pth").exists()


def _merge_into_pickle(tmp_path, to_array):
    """A trained tiny model merged into a D2 ``.pkl`` target whose tensors are ``to_array(tensor)``;
    returns (model, merge report, the merged file's content)."""
    model = _trained_model("PixelCLIP-Tiny-ViT")
    ckpt = _save(model, tmp_path / "pixelclip.pth")
    target = _target_checkpoint("backbone.clip_model.", "PixelCLIP-Tiny-ViT")
    target["model"] = {k: to_array(v) for k, v in target["model"].items()}
    with open(tmp_path / "target.pkl", "wb") as f:
        pickle.dump(target, f)
    report = merge_visual_weights(ckpt, str(tmp_path / "target.pkl"), "fcclip", str(tmp_path / "merged.pkl"))
    with open(tmp_path / "merged.pkl", "rb") as f:
        return model, report, pickle.load(f)


def test_merge_into_d2_pickle_keeps_numpy(tmp_path):
    model, report, merged = _merge_into_pickle(tmp_path, lambda v: v.float().numpy())
    key = report.replaced[0]
    assert isinstance(merged["model"][key], np.ndarray)
    ours = model.backbone.clip_model.state_dict()[key[len("backbone.clip_model."):]]
    np.testing.assert_array_equal(merged["model"][key], ours.numpy())


def _release_layout(model) -> dict:
    """``model``'s weights in the authors' release layout (OpenAI-named CLIP under sem_seg_head...)."""
    inverse_head = {"0": "conv0", "1": "up1", "2.0": "conv1.double_conv.0", "2.1": "conv1.double_conv.1",
                    "3.0": "conv1.double_conv.3", "3.1": "conv1.double_conv.4", "4": "up2",
                    "5.0": "conv2.double_conv.0", "5.1": "conv2.double_conv.1", "6.0": "conv2.double_conv.3",
                    "6.1": "conv2.double_conv.4", "7": "proj"}
    release = {}
    for k, v in model.state_dict().items():
        if k.startswith("backbone.clip_model."):
            release["sem_seg_head.predictor.clip_model." + k[len("backbone.clip_model."):]] = v
            if not k.startswith("backbone.clip_model.visual.") and "transformer." not in k:
                release["teacher_encoder." + k[len("backbone.clip_model."):]] = v  # the release's teacher copy
        elif k.startswith("teacher.encoder."):
            release["teacher_encoder.visual." + k[len("teacher.encoder."):]] = v
        elif k == "prompts.prompt_tokens":
            release["sem_seg_head.predictor.prompt_tokens"] = v
        elif k.startswith("decoder.layers."):
            rest = k[len("decoder.layers."):]
            layer, name = rest.rsplit(".", 1)
            release["head." + inverse_head[layer] + "." + name] = v
    release["sem_seg_head.predictor.some_buffer"] = torch.zeros(3)
    return release


def test_release_checkpoint_imports_with_identical_features(tmp_path):
    source = _trained_model("PixelCLIP-Tiny-ViT", seed=1)
    release = _release_layout(source)
    torch.save({"model": release, "iteration": 10000}, tmp_path / "release.pth")

    target = _trained_model("PixelCLIP-Tiny-ViT", seed=2)
    report = load_release_checkpoint(target, str(tmp_path / "release.pth"))
    assert not [k for k in report.missing if k.startswith("backbone.clip_model.visual.")]
    assert report.missing == []
    assert report.unplaced == ["sem_seg_head.predictor.some_buffer"]
    assert all(k.startswith("teacher_encoder.") for k in report.ignored) and report.ignored
    assert {k for k in report.placed.values() if k.startswith("decoder.")} == set(target.decoder.state_dict(prefix="decoder."))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(target.backbone(images)["clip_dense"], source.backbone(images)["clip_dense"])
        assert torch.equal(target.teacher(images), source.teacher(images))
        cost = torch.randn(1, 3, 4, 4)
        assert torch.equal(target.decoder(cost), source.decoder(cost))
    assert torch.equal(target.prompts.prompt_tokens, source.prompts.prompt_tokens)


def test_release_import_reports_shape_and_missing_problems():
    source = _trained_model("PixelCLIP-Tiny-ViT")
    release = _release_layout(source)
    release["sem_seg_head.predictor.prompt_tokens"] = torch.zeros(3, 4, 32)
    with pytest.raises(ExportError, match="NUM_PROMPTS"):
        load_release_checkpoint(_trained_model("PixelCLIP-Tiny-ViT"), release)
    release = _release_layout(source)
    release.pop("sem_seg_head.predictor.clip_model.visual.proj")
    with pytest.raises(ExportError, match="lacks 1 image-encoder keys"):
        load_release_checkpoint(_trained_model("PixelCLIP-Tiny-ViT"), release)
    converted, report = convert_release_state_dict({"foo.bar": torch.zeros(1)})
    assert converted == {} and report.unplaced == ["foo.bar"]


def test_build_clip_from_any_checkpoint_layout(tmp_path):
    model = _trained_model("PixelCLIP-Tiny-ConvNeXt")
    ckpt = _save(model, tmp_path / "m.pth")
    release = {k.replace("backbone.clip_model.", "sem_seg_head.predictor.clip_model."): v
               for k, v in model.state_dict().items() if k.startswith("backbone.clip_model.")}
    torch.save({"model": release}, tmp_path / "release.pth")
    ours = model.backbone.clip_model.state_dict()
    for path in (ckpt, str(tmp_path / "release.pth")):
        clip, _ = build_clip_from_weights("PixelCLIP-Tiny-ConvNeXt", path)
        for k, v in clip.state_dict().items():
            assert torch.equal(v, ours[k]), (path, k)
    clip, _ = build_clip_from_weights("PixelCLIP-Tiny-ConvNeXt", ckpt, use_teacher=True)
    assert torch.equal(clip.visual.head.proj.weight, model.teacher.encoder.head.proj.weight)
    assert set(clip_state_dict(torch.load(ckpt, weights_only=True)["model"])) == set(ours)


def _export_tool():
    spec = importlib.util.spec_from_file_location("export_clip_tool", ROOT / "tools" / "export_clip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(output: Path) -> dict:
    return json.loads(Path(str(output) + ".report.json").read_text())


def test_export_tool_cli(tmp_path):
    tool = _export_tool()
    model = _trained_model("PixelCLIP-Tiny-ViT")
    ckpt = _save(model, tmp_path / "m.pth")
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text("MODEL:\n  PIXELCLIP:\n    CLIP_MODEL_NAME: PixelCLIP-Tiny-ViT\n    CLIP_PRETRAINED: ''\n"
                        "    NUM_PROMPTS: 8\n")
    assert tool.main(["open-clip", "--weights", ckpt, "--config-file", str(cfg_file), "--output",
                      str(tmp_path / "a.pt")]) == 0
    assert _report(tmp_path / "a.pt")["model_name"] == "PixelCLIP-Tiny-ViT"
    open_clip.create_model_and_transforms("PixelCLIP-Tiny-ViT", pretrained=str(tmp_path / "a.pt"))
    torch.save(_target_checkpoint("sem_seg_head.predictor.clip_model.", "PixelCLIP-Tiny-ViT"), tmp_path / "zeg.pth")
    assert tool.main(["merge", "--weights", ckpt, "--model-name", "PixelCLIP-Tiny-ViT", "--target",
                      str(tmp_path / "zeg.pth"), "--prefix", "zegformer", "--output", str(tmp_path / "zeg_px.pth")]) == 0
    replaced = _report(tmp_path / "zeg_px.pth")["replaced"]
    assert replaced and all(k.startswith("sem_seg_head.predictor.clip_model.visual.") for k in replaced)
    torch.save({"model": _release_layout(model)}, tmp_path / "release.pth")
    assert tool.main(["import-release", "--release", str(tmp_path / "release.pth"), "--config-file", str(cfg_file),
                      "--output", str(tmp_path / "converted.pth")]) == 0
    report = _report(tmp_path / "converted.pth")
    assert report["unplaced"] == ["sem_seg_head.predictor.some_buffer"]
    converted = torch.load(tmp_path / "converted.pth", weights_only=True)["model"]
    assert torch.equal(converted["backbone.clip_model.visual.proj"], model.backbone.clip_model.visual.proj)
    with pytest.raises(ExportError, match="nope.pth"):  # run_tool turns it into one line, status 1
        tool.main(["open-clip", "--weights", str(tmp_path / "nope.pth"), "--model-name", "PixelCLIP-Tiny-ViT",
                   "--output", str(tmp_path / "b.pt")])
    assert os.path.exists(tmp_path / "a.pt")


# --------------------------------------------------------------------- checkpoints that hold no CLIP
def _fcclip_released_layout() -> dict:
    """Key names of a released FC-CLIP checkpoint (FC-CLIP's model: FCCLIP.void_embedding, the Mask2Former
    pixel decoder and its FC-CLIP transformer decoder). Released checkpoints lack every backbone.clip_model.*
    key (FC-CLIP issues #14, #34: Detectron2 lists them all as not found in the checkpoint)."""
    torch.manual_seed(7)
    return {"model": {
        "void_embedding.weight": torch.randn(1, 32),
        "sem_seg_head.pixel_decoder.input_proj.0.0.weight": torch.randn(8, 16, 1, 1),
        "sem_seg_head.predictor.query_feat.weight": torch.randn(4, 8),
        "sem_seg_head.predictor.class_embed.layers.0.weight": torch.randn(8, 8),
        "sem_seg_head.predictor.mask_embed.layers.0.weight": torch.randn(8, 8),
        "sem_seg_head.predictor.logit_scale": torch.tensor(2.0),
    }}


def test_merge_refuses_a_checkpoint_without_clip_and_names_the_route(tmp_path, capsys):
    ckpt = _save(_trained_model("PixelCLIP-Tiny-ViT"), tmp_path / "pixelclip.pth")
    released = tmp_path / "fcclip_cocopan.pth"
    torch.save(_fcclip_released_layout(), released)
    with pytest.raises(ExportError) as err:
        merge_visual_weights(ckpt, str(released), "fcclip", str(tmp_path / "out.pth"), "PixelCLIP-Tiny-ViT")
    message = str(err.value)
    assert "holds no 'backbone.clip_model.visual.*' weights" in message
    assert "Released FC-CLIP checkpoints do not store the frozen CLIP" in message
    assert f"open-clip --weights {ckpt} --model-name PixelCLIP-Tiny-ViT --output pixelclip_clip.pt" in message
    assert (f"MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS pixelclip_clip.pt MODEL.WEIGHTS {released}" in message)
    # ZegFormer saved without CLIP_CLASSIFICATION: its predictor has no clip_model
    zeg = tmp_path / "zegformer.pth"
    torch.save({"model": {"sem_seg_head.predictor.bg_feature": torch.zeros(1, 512),
                          "sem_seg_head.predictor.projection_layer.weight": torch.zeros(512, 8)}}, zeg)
    with pytest.raises(ExportError, match="CLIP_CLASSIFICATION True") as err:
        merge_visual_weights(ckpt, str(zeg), "zegformer", str(tmp_path / "out.pth"))
    assert "MODEL.SEM_SEG_HEAD.CLIP_PRETRAINED pixelclip_openai.pt" in str(err.value)
    assert not (tmp_path / "out.pth").exists()
    # the tool, as its command line runs it: one line on stderr, exit status 1
    tool = _export_tool()
    argv = ["export_clip.py", "merge", "--weights", ckpt, "--model-name", "PixelCLIP-Tiny-ViT", "--target",
            str(released), "--prefix", "fcclip", "--output", str(tmp_path / "out.pth")]
    with pytest.raises(SystemExit) as exit_info:
        tool.run_tool("export_clip", lambda: tool.main(argv[1:]), argv=argv)
    assert exit_info.value.code == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("[export_clip] refusing to merge") and "\n" not in line
    assert "Released FC-CLIP checkpoints do not store the frozen CLIP" in line


def test_released_fcclip_route_keeps_the_exported_clip(tmp_path):
    """The route the refusal names, with FC-CLIP's loading contract: its backbone builds the CLIP with
    ``open_clip.create_model_and_transforms(CLIP_MODEL_NAME, pretrained=CLIP_PRETRAINED_WEIGHTS)``, then
    Detectron2's checkpointer loads MODEL.WEIGHTS non-strictly."""
    from detectron2.checkpoint import DetectionCheckpointer
    from torch import nn

    model = _trained_model("PixelCLIP-Tiny-ConvNeXt")
    ckpt = _save(model, tmp_path / "pixelclip.pth")
    export_open_clip(ckpt, "PixelCLIP-Tiny-ConvNeXt", str(tmp_path / "pixelclip_clip.pt"))
    released = _fcclip_released_layout()
    torch.save(released, tmp_path / "fcclip_cocopan.pth")

    class FCCLIPLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.clip_model = open_clip.create_model_and_transforms(
                "PixelCLIP-Tiny-ConvNeXt", pretrained=str(tmp_path / "pixelclip_clip.pt"))[0]
            self.void_embedding = nn.Embedding(1, 32)
            self.sem_seg_head = nn.Module()
            self.sem_seg_head.predictor = nn.Module()
            self.sem_seg_head.predictor.logit_scale = nn.Parameter(torch.tensor(0.0))

    fcclip = FCCLIPLike()
    DetectionCheckpointer(fcclip).load(str(tmp_path / "fcclip_cocopan.pth"))
    ours = model.backbone.clip_model.state_dict()
    for k, v in fcclip.backbone.clip_model.state_dict().items():
        assert torch.equal(v, ours[k]), k
    assert torch.equal(fcclip.void_embedding.weight, released["model"]["void_embedding.weight"])


# ------------------------------------------------------------------ OpenAI's state-dict contract (ZegFormer)
def _openai_build_model_reader(sd: dict) -> tuple:
    """The contract of OpenAI's ``clip.model.build_model`` (ZegFormer vendors it): the sizes it infers from
    the tensors of a ViT state dict, and the weights it loads after deleting the three scalar entries
    (a plain ``del``: a state dict without them raises KeyError)."""
    assert "visual.proj" in sd  # how it tells a ViT from a ResNet
    patch = sd["visual.conv1.weight"].shape[-1]
    sizes = {
        "embed_dim": sd["text_projection"].shape[1],
        "vision_width": sd["visual.conv1.weight"].shape[0],
        "vision_layers": sum(k.startswith("visual.") and k.endswith(".attn.in_proj_weight") for k in sd),
        "vision_patch_size": patch,
        "image_resolution": patch * round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5),
        "context_length": sd["positional_embedding"].shape[0],
        "vocab_size": sd["token_embedding.weight"].shape[0],
        "transformer_width": sd["ln_final.weight"].shape[0],
        "transformer_heads": sd["ln_final.weight"].shape[0] // 64,
        "transformer_layers": len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks")}),
    }
    weights = dict(sd)
    for key in ("input_resolution", "context_length", "vocab_size"):
        del weights[key]
    return sizes, weights


def test_openai_export_holds_the_scalar_entries_build_model_deletes(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "PixelCLIP-Test-OpenAI-ViT.json").write_text(json.dumps(OPENAI_TEST_CONFIG))
    open_clip.add_model_config(tmp_path / "configs")
    model = _trained_model("PixelCLIP-Test-OpenAI-ViT")
    ckpt = _save(model, tmp_path / "m.pth")
    out = tmp_path / "openai.pt"
    export_openai(ckpt, "PixelCLIP-Test-OpenAI-ViT", str(out), fp16=True)
    sd = torch.load(out, weights_only=True)
    vision, text = OPENAI_TEST_CONFIG["vision_cfg"], OPENAI_TEST_CONFIG["text_cfg"]
    for key, value in (("input_resolution", vision["image_size"]), ("context_length", text["context_length"]),
                       ("vocab_size", text["vocab_size"])):
        assert sd[key].dtype == torch.int64 and sd[key].dim() == 0 and int(sd[key]) == value, key
    sizes, weights = _openai_build_model_reader(sd)
    assert sizes == {"embed_dim": 64, "vision_width": 128, "vision_layers": 2, "vision_patch_size": 16,
                     "image_resolution": 64, "context_length": 32, "vocab_size": 49408, "transformer_width": 64,
                     "transformer_heads": 1, "transformer_layers": 2}
    assert set(weights) == set(model.backbone.clip_model.state_dict())  # a strict load finds every key
    with pytest.raises(KeyError, match="input_resolution"):  # what the export lacked before
        _openai_build_model_reader({k: v for k, v in sd.items() if k != "input_resolution"})
    # this project reads the file back too (the scalar entries are skipped)
    clip, _ = build_clip_from_weights("PixelCLIP-Test-OpenAI-ViT", str(out))
    torch.testing.assert_close(clip.visual.proj, model.backbone.clip_model.visual.proj.half().float())


# --------------------------------------------------------------------- files that are not checkpoints
class _RunsCode:
    """Unpickling it would call ``os.mkdir(<path>)``: a visible side effect if a loader unpickles it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_read_checkpoint_refuses_what_is_not_a_checkpoint_and_runs_no_code(tmp_path):
    from pixelclip.export import read_checkpoint

    ran = tmp_path / "code_ran"
    (tmp_path / "notes.txt").write_text("hello, not a checkpoint\n")
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).integers(1, 256, 4096, dtype=np.uint8).tobytes())
    torch.save({"model": {"w": _RunsCode(str(ran))}}, tmp_path / "object.pth")  # a torch (zip) file
    with open(tmp_path / "object_pickle.pth", "wb") as f:  # a plain pickle under a torch name
        pickle.dump({"model": _RunsCode(str(ran))}, f)
    with open(tmp_path / "object.pkl", "wb") as f:
        pickle.dump(_RunsCode(str(ran)), f)
    data = (tmp_path / "object.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    action = ("— give a Detectron2 / PixelCLIP checkpoint (.pth, .pkl), an open_clip or OpenAI CLIP state dict or a "
              ".safetensors file; other pickled objects are not loaded, since unpickling them runs code")
    expected = {
        "notes.txt": "it is neither a PyTorch nor a pickle file (it starts with b'hello, n')",
        "random.bin": "it is neither a PyTorch nor a pickle file (it starts with b'",
        "object.pth": "it pickles posix.mkdir, not only tensors, arrays, numbers and strings",
        "object_pickle.pth": "it pickles posix.mkdir, not only tensors, arrays, numbers and strings",
        "object.pkl": "it pickles posix.mkdir, not only tensors, arrays, numbers and strings",
        "truncated.pth": "it is a damaged or truncated PyTorch file (",
    }
    for name, why in expected.items():
        with pytest.raises(ExportError) as error:
            read_checkpoint(str(tmp_path / name))
        message = str(error.value)
        assert message.startswith(f"{tmp_path / name} is not a checkpoint: {why}"), message
        assert message.endswith(action) and "\n" not in message, message
    assert not ran.exists()


def test_read_checkpoint_loads_numpy_arrays_and_d2_trainer_state(tmp_path):
    """The allow-list: what Detectron2 checkpoints and model-zoo pickles hold besides tensors."""
    from pixelclip.export import read_checkpoint

    state = {"model": {"w": torch.arange(3.0), "b": np.arange(4, dtype=np.float32), "s": np.float64(0.5)},
             "trainer": {"iteration": 7, "hooks": {"LRScheduler": {"base_lrs": [0.1], "last_epoch": 7}}},
             "__author__": "test", "matching_heuristics": True}
    torch.save(state, tmp_path / "d2.pth")
    with open(tmp_path / "d2.pkl", "wb") as f:
        pickle.dump({"model": {"b": np.arange(4, dtype=np.float16)}, "__author__": "zoo"}, f)
    loaded = read_checkpoint(str(tmp_path / "d2.pth"))
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["model"]["s"] == 0.5
    np.testing.assert_array_equal(loaded["model"]["b"], state["model"]["b"])
    assert loaded["trainer"] == state["trainer"]
    assert read_checkpoint(str(tmp_path / "d2.pkl"))["model"]["b"].dtype == np.float16


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(f"{record.name}: {record.getMessage()}")


def test_export_logs_the_loaded_tensors_not_a_random_initialisation(tmp_path):
    model = _trained_model("PixelCLIP-Tiny-ViT")
    ckpt = _save(model, tmp_path / "model_final.pth")
    records = _Records()
    loggers = [logging.getLogger(), logging.getLogger("pixelclip")]  # open_clip logs to the root logger
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(records)
        logger.setLevel(logging.INFO)
    try:
        export_open_clip(ckpt, "PixelCLIP-Tiny-ViT", str(tmp_path / "a.pt"))
        build_clip_from_weights("PixelCLIP-Tiny-ViT", ckpt)
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(records)
            logger.setLevel(level)
    text = "\n".join(records.lines)
    assert "random" not in text.lower(), text
    n = len(model.backbone.clip_model.state_dict())
    assert f"CLIP PixelCLIP-Tiny-ViT: loaded {n} tensors (fine-tuned weights) from {ckpt}" in text, text
    assert f"CLIP PixelCLIP-Tiny-ViT: loaded {n} tensors (fine-tuned weights) from {ckpt} (pixelclip layout)" in text
    # outside the export, a CLIP built without weights is still said to be random
    records.lines.clear()
    logging.getLogger().addHandler(records)
    try:
        build_clip_from_weights("PixelCLIP-Tiny-ViT", "")
    finally:
        logging.getLogger().removeHandler(records)
    assert "initialized randomly" in "\n".join(records.lines)


def test_teacher_of_a_release_checkpoint_is_exported(tmp_path):
    """The release keeps its EMA image encoder under ``teacher_encoder.visual.*``: ``use_teacher`` exports
    exactly those tensors as ``visual.*`` (and the student's text tower)."""
    model = _trained_model("PixelCLIP-Tiny-ViT")
    release = tmp_path / "release.pth"
    torch.save({"model": _release_layout(model)}, release)
    export_open_clip(str(release), "PixelCLIP-Tiny-ViT", str(tmp_path / "teacher.pt"), use_teacher=True)
    out = torch.load(tmp_path / "teacher.pt", weights_only=True)
    state = model.state_dict()
    teacher = {k[len("teacher.encoder."):]: v for k, v in state.items() if k.startswith("teacher.encoder.")}
    assert {k for k in out if k.startswith("visual.")} == {"visual." + k for k in teacher}
    assert all(torch.equal(out["visual." + k], v) for k, v in teacher.items())
    assert any(not torch.equal(v, state["backbone.clip_model.visual." + k]) for k, v in teacher.items())
    assert torch.equal(out["token_embedding.weight"], state["backbone.clip_model.token_embedding.weight"])


def test_merge_into_a_d2_pickle_keeps_its_float16_arrays(tmp_path):
    """A ``.pkl`` target of float16 numpy arrays gets the fine-tuned weights rounded to float16."""
    model, report, merged = _merge_into_pickle(tmp_path, lambda v: v.half().numpy())
    ours = model.backbone.clip_model.state_dict()
    for key in report.replaced:
        assert merged["model"][key].dtype == np.float16
        np.testing.assert_array_equal(merged["model"][key], ours[key[len("backbone.clip_model."):]].half().numpy())


def test_merge_into_a_float16_torch_checkpoint_keeps_float16(tmp_path):
    """A ``.pth`` target storing its CLIP in float16 gets the fine-tuned weights rounded to float16."""
    model = _trained_model("PixelCLIP-Tiny-ViT")
    ckpt = _save(model, tmp_path / "pixelclip.pth")
    target = _target_checkpoint("backbone.clip_model.", "PixelCLIP-Tiny-ViT")
    target["model"] = {k: v.half() for k, v in target["model"].items()}
    torch.save(target, tmp_path / "target.pth")
    report = merge_visual_weights(ckpt, str(tmp_path / "target.pth"), "fcclip", str(tmp_path / "merged.pth"))
    merged = torch.load(tmp_path / "merged.pth", weights_only=True)["model"]
    ours = model.backbone.clip_model.state_dict()
    for key in report.replaced:
        assert merged[key].dtype == torch.float16
        assert torch.equal(merged[key], ours[key[len("backbone.clip_model."):]].half())


def test_merge_refuses_a_target_image_key_it_cannot_fill(tmp_path):
    """A target image-encoder tensor the fine-tuned CLIP has no counterpart for would keep the old weights:
    the merge is refused and writes nothing."""
    model = _trained_model("PixelCLIP-Tiny-ViT")
    ckpt = _save(model, tmp_path / "pixelclip.pth")
    target = _target_checkpoint("backbone.clip_model.", "PixelCLIP-Tiny-ViT")
    target["model"]["backbone.clip_model.visual.adapter.weight"] = torch.zeros(4, 4)
    torch.save(target, tmp_path / "target.pth")
    with pytest.raises(ExportError, match=r"1 target image-encoder keys have no counterpart, "
                                          r"e\.g\. \['backbone\.clip_model\.visual\.adapter\.weight'\]"):
        merge_visual_weights(ckpt, str(tmp_path / "target.pth"), "fcclip", str(tmp_path / "merged.pth"))
    assert not (tmp_path / "merged.pth").exists()


def test_state_dict_of_converts_arrays_and_strips_only_a_prefix_every_key_has(tmp_path):
    """numpy arrays become tensors of the same values; ``module.`` is removed only when every key has it."""
    from pixelclip.export import load_state_dict_file, state_dict_of

    arrays = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5], dtype=np.float64)}
    with open(tmp_path / "arrays.pkl", "wb") as f:
        pickle.dump({"model": arrays}, f)
    sd = load_state_dict_file(str(tmp_path / "arrays.pkl"))
    assert sd.keys() == arrays.keys()
    assert all(isinstance(v, torch.Tensor) and np.array_equal(v.numpy(), arrays[k]) for k, v in sd.items())
    assert state_dict_of({"module.x": torch.ones(1), "module.y": torch.zeros(1)}).keys() == {"x", "y"}
    assert state_dict_of({"module.x": torch.ones(1), "y": torch.zeros(1)}).keys() == {"module.x", "y"}
