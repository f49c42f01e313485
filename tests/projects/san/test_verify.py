"""pixelclip_san.verify (and projects/SAN/check_san.py on checkpoint files): every way a SAN model can
fail to hold the export is named."""
from pathlib import Path

import open_clip
import pytest
import torch

from pixelclip_san.errors import SanWeightsError
from pixelclip_san.merge import merge_into_san
from pixelclip_san.verify import check_san_holds
from tests.projects.san.san_fixture import (
    LAYOUT,
    SAN_POSITIONAL_KEY,
    fine_tuned,
    run_script,
    san_state_dict,
    tiny_clip_state_dict,
)

CHECK_SAN = Path(__file__).resolve().parents[3] / "projects" / "SAN" / "check_san.py"
N_CLIP = len(LAYOUT["open_clip_state_dict"])


@pytest.fixture
def merged():
    original = tiny_clip_state_dict(0)
    pixelclip = fine_tuned(original)
    san = san_state_dict(original)
    merge_into_san(san, pixelclip)
    return san, pixelclip, original


def test_merged_holds_the_export(merged):
    san, pixelclip, _ = merged
    report = check_san_holds(san, pixelclip)
    assert report.ok and len(report.equal) == N_CLIP - 1
    assert list(report.skipped) == [SAN_POSITIONAL_KEY]
    report.raise_if_bad("merged")  # no error


def test_unmerged_lists_every_image_tensor(merged):
    _, pixelclip, original = merged
    report = check_san_holds(san_state_dict(original), pixelclip)
    n_visual = sum(k.startswith("visual.") for k in LAYOUT["open_clip_state_dict"])
    assert len(report.values) == n_visual - 1 and not report.missing and not report.shapes
    with pytest.raises(SanWeightsError, match=f"{n_visual - 1} of other value"):
        report.raise_if_bad("san.pth")


def test_missing_shapes_and_unexpected_keys(merged):
    san, pixelclip, _ = merged
    san.pop("clip_rec_head.ln_post.weight")
    san["clip_visual_extractor.ln_pre.bias"] = torch.zeros(47)
    san["clip_visual_extractor.extra"] = torch.zeros(1)
    report = check_san_holds(san, pixelclip)
    assert report.missing == ["clip_rec_head.ln_post.weight"]
    assert report.shapes == ["clip_visual_extractor.ln_pre.bias: export (48,) vs SAN (47,)"]
    assert report.unexpected == ["clip_visual_extractor.extra"]


def test_positional_embedding_compared_on_request(merged):
    san, pixelclip, _ = merged
    report = check_san_holds(san, pixelclip, positional="pixelclip")
    assert [v.split(":")[0] for v in report.values] == [SAN_POSITIONAL_KEY]  # SAN's own was kept


def test_fp16_rounding_only_when_allowed(merged):
    san, pixelclip, _ = merged
    key = "clip_rec_head.resblocks.0.mlp.c_fc.weight"
    san[key] = san[key].half().float()  # what open_clip's "openai" loading path does to linear weights
    assert [v.split(":")[0] for v in check_san_holds(san, pixelclip).values] == [key]
    report = check_san_holds(san, pixelclip, allow_fp16_rounding=True)
    assert report.ok and report.fp16_rounded == [key]


def test_text_tower_from_another_clip(merged):
    san, _, _ = merged
    other = fine_tuned(tiny_clip_state_dict(1))
    assert check_san_holds(san, other, text=False).values  # other image encoder too
    report = check_san_holds(san, other)
    assert any(v.startswith("ov_classifier.token_embedding.weight") for v in report.values)


@pytest.mark.parametrize("quick_gelu, expected_ok", [(True, True), (False, False)])
def test_activation(merged, quick_gelu, expected_ok):
    san, pixelclip, _ = merged
    config = dict(LAYOUT["open_clip_config"], quick_gelu=quick_gelu)
    model = open_clip.model.CLIP(**config)  # SAN's CLIP modules are open_clip's blocks
    report = check_san_holds(san, pixelclip, model=model, activation="QuickGELU")
    assert report.ok == expected_ok
    if not expected_ok:
        assert report.activation[0].startswith("SAN's CLIP blocks use ['GELU'], the export was trained with QuickGELU")


def test_not_a_san_state_dict(merged):
    _, pixelclip, _ = merged
    with pytest.raises(SanWeightsError, match="not a SAN model"):
        check_san_holds({"backbone.x": torch.zeros(1)}, pixelclip)


def test_command_line_on_checkpoint_files(merged, tmp_path, capsys):
    san, pixelclip, original = merged
    # a PixelCLIP Detectron2 checkpoint is read as well as the export
    torch.save({"model": {"backbone.clip_model." + k: v for k, v in pixelclip.items()}}, tmp_path / "pixelclip.pth")
    torch.save({"model": san}, tmp_path / "merged.pth")
    torch.save({"model": san_state_dict(original)}, tmp_path / "unmerged.pth")
    clip_arg = ["--pixelclip-clip", tmp_path / "pixelclip.pth"]
    code, printed = run_script(CHECK_SAN, clip_arg + ["--san-checkpoint", tmp_path / "merged.pth"], capsys)
    assert code == 0 and '"ok": true' in printed.out
    code, printed = run_script(CHECK_SAN, clip_arg + ["--san-checkpoint", tmp_path / "unmerged.pth"], capsys)
    assert code == 1
    assert "value differs: clip_rec_head.proj: max |export - SAN| =" in printed.out
    errors = [line for line in printed.err.splitlines() if line.startswith("[check_san]")]  # libraries may warn too
    assert len(errors) == 1
    assert errors[0].startswith(f"[check_san] {tmp_path / 'unmerged.pth'} does not hold the exported CLIP")
    n_visual = sum(k.startswith("visual.") for k in LAYOUT["open_clip_state_dict"])
    assert f"{n_visual - 1} of other value" in errors[0]  # every image tensor but SAN's positional embedding


def test_mixed_activations_are_reported(merged):
    """Blocks that mix GELU and QuickGELU are not a model that runs QuickGELU throughout."""
    san, pixelclip, _ = merged
    model = open_clip.model.CLIP(**dict(LAYOUT["open_clip_config"], quick_gelu=True))
    model.visual.transformer.resblocks[0].mlp.gelu = torch.nn.GELU()
    report = check_san_holds(san, pixelclip, model=model, activation="QuickGELU")
    assert not report.ok
    assert report.activation[0].startswith("SAN's CLIP blocks use ['GELU', 'QuickGELU']")
