"""pixelclip.checkpoint: MODEL.WEIGHTS that do not fit are refused (or loaded on purpose), the
authors' release checkpoints are converted on the fly, and saving is atomic."""
import errno
import json
import logging
import os

import open_clip
import pytest
import torch
from detectron2.modeling import build_model
from tests.conftest import make_tiny_cfg

from pixelclip.checkpoint import PixelCLIPCheckpointer, build_checkpointer
from pixelclip.errors import CheckpointError

# the release's own outputs on a tiny model (fixtures/README.md); the copy in tests/fixtures/ first
_HERE = os.path.join(os.path.dirname(__file__), "fixtures", "release_golden_tiny.pt")
GOLDEN = _HERE if os.path.isfile(_HERE) else "/work/shared/fixtures/release_golden_tiny.pt"


def _model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model(make_tiny_cfg(**overrides)).eval()


def _dino_vits_like_state_dict() -> dict:
    """Keys and shapes of timm's ``vit_small_patch16_224`` (DINO ViT-S/16), random values."""
    sd = {"cls_token": torch.randn(1, 1, 384), "pos_embed": torch.randn(1, 197, 384),
          "patch_embed.proj.weight": torch.randn(384, 3, 16, 16), "patch_embed.proj.bias": torch.randn(384),
          "norm.weight": torch.ones(384), "norm.bias": torch.zeros(384)}
    for i in range(12):
        p = f"blocks.{i}."
        sd.update({p + "norm1.weight": torch.ones(384), p + "norm1.bias": torch.zeros(384),
                   p + "attn.qkv.weight": torch.randn(1152, 384), p + "attn.qkv.bias": torch.randn(1152),
                   p + "attn.proj.weight": torch.randn(384, 384), p + "attn.proj.bias": torch.randn(384),
                   p + "norm2.weight": torch.ones(384), p + "norm2.bias": torch.zeros(384),
                   p + "mlp.fc1.weight": torch.randn(1536, 384), p + "mlp.fc1.bias": torch.randn(1536),
                   p + "mlp.fc2.weight": torch.randn(384, 1536), p + "mlp.fc2.bias": torch.randn(384)})
    return sd


def test_a_checkpoint_of_another_model_is_refused_naming_the_file_and_the_parts(tmp_path):
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(_dino_vits_like_state_dict(), path)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        PixelCLIPCheckpointer(model).load(str(path))
    message = str(err.value)
    assert message.startswith(f"{path} does not fit this model: ") and "\n" not in message
    # the tiny ViT's image tower: conv1, class and positional embeddings, ln_pre (2), 2 blocks of 12
    # (ln_1, in_proj, out_proj, ln_2, c_fc, c_proj: weight and bias), ln_post (2), proj = 32 tensors;
    # the decoder: 8 convolutions and 4 GroupNorms, weight and bias = 24; the prompts: 1
    assert "image encoder: no weights for 32 tensors (backbone.clip_model.visual." in message
    assert "prompts: no weights for 1 tensors (prompts.prompt_tokens)" in message
    assert "decoder: no weights for 20 tensors (decoder.layers." in message
    # DINO ViT-S/16: 6 tensors outside the blocks, 12 blocks of 12
    assert "150 keys (cls_token, pos_embed, patch_embed.proj.weight, ...) of the file fit nowhere" in message
    assert "ALLOW_PARTIAL_WEIGHTS True" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was loaded


def test_allow_partial_weights_loads_what_fits_with_a_warning(tmp_path, caplog):
    source = _model(seed=1)
    partial = {k: v for k, v in source.state_dict().items() if not k.startswith("decoder.")}
    torch.save({"model": partial}, tmp_path / "no_decoder.pth")
    model = _model(seed=2)
    with pytest.raises(CheckpointError, match="decoder: no weights for 20 tensors"):
        PixelCLIPCheckpointer(model).load(str(tmp_path / "no_decoder.pth"))
    cfg = make_tiny_cfg()
    cfg.MODEL.PIXELCLIP.ALLOW_PARTIAL_WEIGHTS = True
    logger = logging.getLogger("pixelclip.checkpoint")
    logger.addHandler(caplog.handler)
    try:
        build_checkpointer(cfg, model).load(str(tmp_path / "no_decoder.pth"))
    finally:
        logger.removeHandler(caplog.handler)
    assert "loaded anyway: MODEL.PIXELCLIP.ALLOW_PARTIAL_WEIGHTS is True" in caplog.text
    assert torch.equal(model.backbone.clip_model.visual.conv1.weight, source.backbone.clip_model.visual.conv1.weight)


def test_the_text_tower_is_stored_once():
    """The backbone owns the CLIP model; the text encoder, prompts and classifier only reference it."""
    keys = list(_model().state_dict())
    assert not [k for k in keys if "text_encoder." in k]
    assert "backbone.clip_model.token_embedding.weight" in keys and "backbone.clip_model.ln_final.weight" in keys
    assert "prompts.prompt_tokens" in keys


_TEXT_TOWER = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def test_a_checkpoint_of_the_older_layout_with_text_tower_copies_loads(tmp_path, caplog):
    """Checkpoints written before the text tower had one owner also stored it under text_encoder.*,
    prompts.text_encoder.* and classifier.text_encoder.*: those copies are dropped, nothing is unexpected."""
    source = _model(seed=3)
    sd = dict(source.state_dict())
    clip = "backbone.clip_model."
    tower = {k[len(clip):]: v for k, v in sd.items() if k.startswith(clip) and k[len(clip):].startswith(_TEXT_TOWER)}
    assert "ln_final.weight" in tower and "transformer.resblocks.0.attn.in_proj_weight" in tower
    for owner in ("text_encoder.", "prompts.text_encoder.", "classifier.text_encoder."):
        sd.update({owner + k: v.clone() for k, v in tower.items()})
    torch.save({"model": sd}, tmp_path / "old_layout.pth")
    model = _model(seed=4)
    checkpointer = PixelCLIPCheckpointer(model)
    checkpointer._path = str(tmp_path / "old_layout.pth")
    incompatible = checkpointer._load_model({"model": torch.load(tmp_path / "old_layout.pth")["model"]})
    assert incompatible.unexpected_keys == [] and incompatible.missing_keys == []
    PixelCLIPCheckpointer(model).load(str(tmp_path / "old_layout.pth"))  # the public path, too
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_another_clip_architecture_is_refused_with_the_shapes(tmp_path):
    other = _model(model_name="PixelCLIP-Synthetic-ViT")
    torch.save({"model": other.state_dict()}, tmp_path / "other_clip.pth")
    with pytest.raises(CheckpointError) as err:
        PixelCLIPCheckpointer(_model()).load(str(tmp_path / "other_clip.pth"))
    message = str(err.value)
    assert "other_clip.pth does not fit this model" in message and "tensors have another shape" in message
    # widths 48 (tiny) vs 128 (synthetic), patch 16 vs 8
    assert "backbone.clip_model.visual.class_embedding (128,) vs (48,)" in message


def test_a_plain_clip_file_given_as_model_weights_says_where_it_belongs(tmp_path):
    clip, _ = open_clip.create_model("PixelCLIP-Tiny-ViT"), None
    torch.save(clip.state_dict(), tmp_path / "open_clip.pt")
    with pytest.raises(CheckpointError, match="give it as MODEL.PIXELCLIP.CLIP_PRETRAINED"):
        PixelCLIPCheckpointer(_model()).load(str(tmp_path / "open_clip.pt"))


def test_truncated_or_missing_file(tmp_path):
    model = _model()
    PixelCLIPCheckpointer(model, str(tmp_path)).save("model_0000001")
    data = (tmp_path / "model_0000001.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*cut.pth .* truncated"):
        PixelCLIPCheckpointer(model).load(str(tmp_path / "cut.pth"))
    with pytest.raises(CheckpointError, match="checkpoint file not found: .*nope.pth"):
        PixelCLIPCheckpointer(model).load(str(tmp_path / "nope.pth"))


class _RunsCode:
    """What a crafted pickle does: unpickling calls ``exec`` on its payload."""

    def __init__(self, payload: str):
        self.payload = payload

    def __reduce__(self):
        return exec, (self.payload,)


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_model_zoo_pkl_of_numpy_arrays_loads(tmp_path, protocol):
    """Detectron2's model-zoo format: {"model": {name: ndarray}, "__author__": ...}, as D2 reads it."""
    import pickle

    model = _model(seed=1)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    path = tmp_path / "zoo.pkl"
    path.write_bytes(pickle.dumps({"model": state, "__author__": "someone"}, protocol=protocol))
    target = _model(seed=2)
    PixelCLIPCheckpointer(target).load(str(path))
    for key, value in target.state_dict().items():
        assert torch.equal(value, torch.from_numpy(state[key])), key


def test_a_pkl_that_would_run_code_is_refused_before_anything_runs(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    path = tmp_path / "model_final.pkl"
    state = {"model": {"w": _RunsCode(f"open({str(marker)!r}, 'w').close()")}, "__author__": "x"}
    path.write_bytes(pickle.dumps(state, protocol=2))
    with pytest.raises(CheckpointError, match=rf"refusing to read {path}: it names (__builtin__|builtins).exec, which a "
                       r"weights file has no use for .*a .pkl checkpoint must hold only numpy arrays"):
        PixelCLIPCheckpointer(_model()).load(str(path))
    assert not marker.exists()
    path.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match=rf"refusing to read {path}"):
        PixelCLIPCheckpointer(_model()).load(str(path))


def _golden_model(tmp_path, golden):
    """A PixelCLIP model with the golden release model's architecture (fixtures/README.md)."""
    config = golden["config"]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / f"{config['open_clip_model_name']}.json").write_text(
        json.dumps(config["open_clip_model_cfg"]))
    open_clip.add_model_config(tmp_path / "configs")
    return build_model(make_tiny_cfg(
        model_name=config["open_clip_model_name"], **{
            "MODEL.PIXELCLIP.NUM_PROMPTS": config["num_prompts"],
            "MODEL.PIXELCLIP.CLIP_RESOLUTION": tuple(config["clip_resolution"]),
            "MODEL.PIXELCLIP.MASK_RESOLUTION": config["mask_resolution"][0]}))


@pytest.mark.skipif(not os.path.isfile(GOLDEN), reason="the shared release golden fixture is not on this machine")
def test_release_checkpoint_as_model_weights_is_converted(tmp_path):
    golden = torch.load(GOLDEN, map_location="cpu", weights_only=False)
    release = golden["release_state_dict"]
    path = tmp_path / "pixelclip_release.pth"
    torch.save({"model": {k: v.contiguous() for k, v in release.items()}}, path)
    model = _golden_model(tmp_path, golden)
    PixelCLIPCheckpointer(model).load(str(path))
    ours = model.state_dict()
    # the release's names (its PixelCLIP predictor, EMA teacher, ConvHead) -> this project's
    assert torch.equal(ours["backbone.clip_model.visual.conv1.weight"],
                       release["sem_seg_head.predictor.clip_model.visual.conv1.weight"])
    assert torch.equal(ours["backbone.clip_model.token_embedding.weight"],
                       release["sem_seg_head.predictor.clip_model.token_embedding.weight"])
    assert torch.equal(ours["prompts.prompt_tokens"], release["sem_seg_head.predictor.prompt_tokens"])
    assert torch.equal(ours["teacher.encoder.transformer.resblocks.0.attn.in_proj_weight"],
                       release["teacher_encoder.visual.transformer.resblocks.0.attn.in_proj_weight"])
    assert torch.equal(ours["decoder.layers.0.weight"], release["head.conv0.weight"])
    assert torch.equal(ours["decoder.layers.7.bias"], release["head.proj.bias"])
    # the release's DoubleConv convolutions before a GroupNorm have no bias, and neither have ours
    assert "decoder.layers.2.0.bias" not in ours and torch.equal(ours["decoder.layers.2.0.weight"], release["head.conv1.double_conv.0.weight"])


def test_save_is_atomic_when_the_disk_fills_up(tmp_path, monkeypatch):
    model = _model()
    checkpointer = PixelCLIPCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000001")
    good = (tmp_path / "model_0000001.pth").read_bytes()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"

    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):  # half the bytes reach the disk, then ENOSPC
        real_save(obj, f, *args, **kwargs)
        f.truncate(len(good) // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with torch.no_grad():
        model.prompts.prompt_tokens.add_(1.0)
    with pytest.raises(OSError, match="No space left"):
        checkpointer.save("model_0000001")  # overwrite the same name
    with pytest.raises(OSError, match="No space left"):
        checkpointer.save("model_0000002")
    assert (tmp_path / "model_0000001.pth").read_bytes() == good  # the previous checkpoint is intact
    assert not (tmp_path / "model_0000002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]  # no temporary file left


def test_a_temporary_left_by_a_killed_save_is_removed_when_the_checkpointer_starts(tmp_path):
    from tests.utils.test_io import _dead_pid

    from pixelclip.utils.io import TEMP_MARKER

    stale = tmp_path / f"model_0000001.pth{TEMP_MARKER}{_dead_pid()}-0123abcd"
    stale.write_bytes(b"")  # what kill -9 right after the temporary file was opened leaves
    old = os.stat(tmp_path).st_mtime - 3600
    os.utime(stale, (old, old))
    model = torch.nn.Linear(2, 2)
    checkpointer = PixelCLIPCheckpointer(model, str(tmp_path))
    assert not stale.exists()
    stale.write_bytes(b"")
    os.utime(stale, (old, old))
    checkpointer.save("model_0000003")  # and before each save
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000003.pth"]


def test_frozen_text_tower_tensors_missing_from_the_file_keep_their_values_with_a_warning(tmp_path, caplog):
    """Only the image encoder and the trained parts (``requires_grad``) are required; a file without some of the
    frozen text tower loads, those tensors keep their (CLIP_PRETRAINED) values and the warning counts them."""
    source = _model(seed=1)
    frozen = [k for k, p in source.named_parameters() if k.startswith("backbone.clip_model.ln_final.")]
    assert frozen and not any(dict(source.named_parameters())[k].requires_grad for k in frozen)
    torch.save({"model": {k: v for k, v in source.state_dict().items() if k not in frozen}}, tmp_path / "no_ln_final.pth")
    model = _model(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logger = logging.getLogger("pixelclip.checkpoint")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="pixelclip.checkpoint"):
            PixelCLIPCheckpointer(model).load(str(tmp_path / "no_ln_final.pth"))
    finally:
        logger.removeHandler(caplog.handler)
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in frozen)
    assert torch.equal(after["prompts.prompt_tokens"], source.state_dict()["prompts.prompt_tokens"])
    assert f"{len(frozen)} tensors (backbone.clip_model.ln_final." in caplog.text


def test_a_frozen_tensor_of_another_shape_is_refused(tmp_path):
    """A shape mismatch is refused even where only a frozen tensor differs (here the text tower's position
    embedding of a shorter context): Detectron2 would skip it and keep the model's own."""
    state = _model(seed=1).state_dict()
    key = "backbone.clip_model.positional_embedding"
    state[key] = state[key][:20].clone()  # the tiny text tower has a context of 32
    torch.save({"model": state}, tmp_path / "short_context.pth")
    model = _model(seed=2)
    with pytest.raises(CheckpointError, match=r"1 tensors have another shape \(checkpoint vs model: "
                                              r"backbone\.clip_model\.positional_embedding \(20, "):
        PixelCLIPCheckpointer(model).load(str(tmp_path / "short_context.pth"))
