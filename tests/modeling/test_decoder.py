"""The training-only decoder: the release's layout (no bias before GroupNorm) and loading older checkpoints."""
import logging

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from pixelclip.modeling.decoder import CostVolumeDecoder
from tests.conftest import make_tiny_cfg

BIASES = [f"layers.{i}.0.bias" for i in (2, 3, 5, 6)]


def test_only_the_convolutions_before_groupnorm_have_no_bias():
    decoder = CostVolumeDecoder(channels=(64, 32))
    names = {n for n, _ in decoder.named_parameters()}
    assert not names & set(BIASES)
    # first conv, transposed convs and last conv keep theirs; GroupNorm weight/bias
    assert {"layers.0.bias", "layers.1.bias", "layers.4.bias", "layers.7.bias", "layers.2.1.bias"} <= names
    assert [m.num_groups for m in decoder.modules() if isinstance(m, torch.nn.GroupNorm)] == [4, 4, 2, 2]


def _old_checkpoint(decoder, fill):
    """``decoder``'s state dict as an older version wrote it: with biases before each GroupNorm."""
    state = {k: v.clone() for k, v in decoder.state_dict().items()}
    for key in BIASES:
        channels = state[key.replace("bias", "weight")].shape[0]
        state[key] = torch.full((channels,), fill)
    return state


def test_old_zero_biases_are_dropped_and_compute_the_same(caplog):
    torch.manual_seed(0)
    source, target = CostVolumeDecoder(channels=(16, 16)), CostVolumeDecoder(channels=(16, 16))
    with caplog.at_level(logging.WARNING, logger="pixelclip.modeling.decoder"):
        result = target.load_state_dict(_old_checkpoint(source, 0.0), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert "all-zero" in caplog.text
    cost = torch.randn(2, 3, 4, 4)
    assert torch.equal(target(cost), source(cost))


def test_old_nonzero_biases_load_with_a_warning_through_the_checkpointer(tmp_path, caplog):
    torch.manual_seed(0)
    model = build_model(make_tiny_cfg())
    state = {k: v for k, v in model.state_dict().items()}
    state.update({"decoder." + k: v for k, v in _old_checkpoint(model.decoder, 0.5).items()})
    torch.save({"model": state}, tmp_path / "old.pth")
    fresh = build_model(make_tiny_cfg())
    with caplog.at_level(logging.WARNING):
        DetectionCheckpointer(fresh).load(str(tmp_path / "old.pth"))
    assert "non-zero biases" in caplog.text and "inference and export are unaffected" in caplog.text
    assert "not used by the model" not in caplog.text and "not found in the checkpoint" not in caplog.text
    assert all(torch.equal(fresh.state_dict()[k], model.state_dict()[k]) for k in model.state_dict())


def test_decoder_channels_and_norm_groups_from_the_config():
    """DECODER_CHANNELS = (16, 8) and DECODER_NORM_GROUPS = 2 (not the release's channels // 16): every layer
    has the configured widths, every GroupNorm 2 groups, and a B×K×h×w cost volume comes out B×K×4h×4w."""
    cfg = make_tiny_cfg(**{"MODEL.PIXELCLIP.DECODER_CHANNELS": (16, 8), "MODEL.PIXELCLIP.DECODER_NORM_GROUPS": 2})
    decoder = build_model(cfg).decoder
    convs = [m for m in decoder.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(1, 16), (16, 16), (16, 16), (16, 16), (16, 8),
                                                                (8, 8), (8, 8), (8, 1)]
    norms = [m for m in decoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert [(m.num_groups, m.num_channels) for m in norms] == [(2, 16), (2, 16), (2, 8), (2, 8)]
    assert decoder(torch.randn(2, 3, 5, 6)).shape == (2, 3, 20, 24)


def test_norm_groups_zero_is_one_group_per_16_channels_and_at_least_one():
    """The release's rule: channels // 16 groups, and one group for fewer than 16 channels."""
    decoder = CostVolumeDecoder(channels=(48, 8), norm_groups=0)
    assert [m.num_groups for m in decoder.modules() if isinstance(m, torch.nn.GroupNorm)] == [3, 3, 1, 1]
