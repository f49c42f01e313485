"""pixelclip_san.merge and projects/SAN/merge_san.py on SAN state dicts of the recorded layout."""
import json
from pathlib import Path

import pytest
import torch

from pixelclip_san.errors import SanWeightsError
from pixelclip_san.merge import merge_into_san
from tests.projects.san.san_fixture import (
    LAYOUT,
    SAN_POSITIONAL_KEY,
    SIDE_ADAPTER_KEY,
    fine_tuned,
    run_script,
    san_state_dict,
    tiny_clip_state_dict,
)

MERGE_SAN = Path(__file__).resolve().parents[3] / "projects" / "SAN" / "merge_san.py"


@pytest.fixture
def clips():
    """(the original CLIP SAN was trained on, the PixelCLIP fine-tuned one)."""
    original = tiny_clip_state_dict(0)
    return original, fine_tuned(original)


def _snapshot(sd):
    return {k: v.clone() for k, v in sd.items()}


def test_merge_places_every_image_tensor_where_san_holds_it(clips):
    original, pixelclip = clips
    san = san_state_dict(original)
    before = _snapshot(san)
    report = merge_into_san(san, pixelclip)
    assert report.first_rec_layer == 3 and report.text_max_abs_difference == 0.0
    for san_key, clip_key in LAYOUT["san_to_open_clip"].items():
        if san_key == SAN_POSITIONAL_KEY or clip_key is None or not clip_key.startswith("visual."):
            assert torch.equal(san[san_key], before[san_key]), san_key  # SAN's own, the text tower: kept
        else:
            assert torch.equal(san[san_key], pixelclip[clip_key]), san_key
    assert torch.equal(san[SIDE_ADAPTER_KEY], before[SIDE_ADAPTER_KEY])
    visual_in_san = [k for k, v in LAYOUT["san_to_open_clip"].items() if v and v.startswith("visual.")]
    assert sorted(report.replaced) == sorted(set(visual_in_san) - {SAN_POSITIONAL_KEY})
    assert list(report.kept) == [SAN_POSITIONAL_KEY]


def test_positional_embedding_from_pixelclip_on_request(clips):
    original, pixelclip = clips
    san = san_state_dict(original)
    merge_into_san(san, pixelclip, positional="pixelclip")
    assert torch.equal(san[SAN_POSITIONAL_KEY], pixelclip["visual.positional_embedding"])


def test_keeps_the_stored_dtype(clips):
    original, pixelclip = clips
    san = {k: v.half() for k, v in san_state_dict(original).items()}
    merge_into_san(san, pixelclip)
    key = "clip_rec_head.resblocks.0.attn.in_proj_weight"
    assert san[key].dtype == torch.float16
    assert torch.equal(san[key], pixelclip["visual.transformer.resblocks.3.attn.in_proj_weight"].half())


def test_refuses_another_clip_and_changes_nothing(clips):
    original, pixelclip = clips
    other = fine_tuned(tiny_clip_state_dict(1))  # fine-tuned from another CLIP: other text tower
    san = san_state_dict(original)
    before = _snapshot(san)
    with pytest.raises(SanWeightsError, match="text towers differ"):
        merge_into_san(san, other)
    assert all(torch.equal(san[k], before[k]) for k in san)
    report = merge_into_san(san, other, allow_other_text=True)
    assert report.text_max_abs_difference > 0


def test_refuses_other_depth_or_no_clip(clips):
    original, pixelclip = clips
    san = san_state_dict(original)
    deeper = {**san, **{k.replace("resblocks.0.", "resblocks.1."): v for k, v in san.items()
                        if k.startswith("clip_rec_head.resblocks.0.")}}
    with pytest.raises(SanWeightsError, match=r"5-block CLIP \(3 \+ 2\), the export has 4"):
        merge_into_san(deeper, pixelclip)
    no_clip = {k: v for k, v in san.items() if not k.startswith(("clip_visual_extractor.", "clip_rec_head."))}
    with pytest.raises(SanWeightsError, match="holds no SAN CLIP"):
        merge_into_san(no_clip, pixelclip)


def test_refuses_shape_mismatch(clips):
    original, pixelclip = clips
    san = san_state_dict(original)
    san["clip_visual_extractor.conv1.weight"] = torch.zeros(48, 3, 14, 14)
    with pytest.raises(SanWeightsError, match=r"1 shapes differ.*conv1.weight: export \(48, 3, 16, 16\)"):
        merge_into_san(san, pixelclip)


def test_command_line_merges_checks_and_reports(clips, tmp_path, capsys):
    original, pixelclip = clips
    export = tmp_path / "pixelclip_open_clip.pt"
    torch.save(pixelclip, export)  # what tools/export_clip.py open-clip writes: a plain open_clip state dict
    san = san_state_dict(original)
    torch.save({"model": san, "iteration": 59999}, tmp_path / "san.pth")
    out = tmp_path / "san_pixelclip.pth"
    args = ["--pixelclip-clip", export, "--san-checkpoint", tmp_path / "san.pth", "--output", out]
    code, printed = run_script(MERGE_SAN, args, capsys)
    assert code == 0, printed.err
    merged = torch.load(out, weights_only=True)
    assert merged["iteration"] == 59999
    assert torch.equal(merged["model"]["clip_rec_head.proj"], pixelclip["visual.proj"])
    report = json.loads(Path(str(out) + ".report.json").read_text())
    n_visual = sum(k.startswith("visual.") for k in LAYOUT["open_clip_state_dict"])  # 4 blocks x 12 + 8 = 56
    assert report["first_rec_layer"] == 3 and len(report["replaced"]) == len(set(report["replaced"])) == n_visual - 1
    # every CLIP tensor of the export compared but SAN's own positional embedding
    assert report["check"].startswith(f"{len(LAYOUT['open_clip_state_dict']) - 1} equal, 1 skipped, 0 missing")


def test_command_line_refusal_writes_nothing(clips, tmp_path, capsys):
    original, _ = clips
    torch.save(fine_tuned(tiny_clip_state_dict(1)), tmp_path / "other.pt")
    torch.save({"model": san_state_dict(original)}, tmp_path / "san.pth")
    code, printed = run_script(MERGE_SAN, ["--pixelclip-clip", tmp_path / "other.pt", "--san-checkpoint", tmp_path / "san.pth",
                              "--output", tmp_path / "out.pth"], capsys)
    assert code == 1
    errors = [line for line in printed.err.splitlines() if line.startswith("[merge_san]")]  # libraries may warn too
    assert len(errors) == 1 and errors[0].startswith("[merge_san] refusing to merge: the text towers differ")
    assert not (tmp_path / "out.pth").exists()


class _RunsCode:
    """What a crafted pickle does: unpickling calls ``exec`` on its payload."""

    def __init__(self, payload: str):
        self.payload = payload

    def __reduce__(self):
        return exec, (self.payload,)


def test_a_checkpoint_with_python_objects_is_read_only_when_trusted(clips, tmp_path, capsys):
    import argparse

    original, pixelclip = clips
    torch.save(pixelclip, tmp_path / "export.pt")
    marker = tmp_path / "ran"
    torch.save({"model": san_state_dict(original), "hook": _RunsCode(f"open({str(marker)!r}, 'w').close()")},
               tmp_path / "crafted.pth")
    args = ["--pixelclip-clip", tmp_path / "export.pt", "--output", tmp_path / "out.pth", "--san-checkpoint"]
    code, printed = run_script(MERGE_SAN, args + [tmp_path / "crafted.pth"], capsys)
    errors = [line for line in printed.err.splitlines() if line.startswith("[merge_san]")]
    assert code == 1 and len(errors) == 1, printed.err
    assert errors[0].startswith(f"[merge_san] {tmp_path / 'crafted.pth'} cannot be read as weights only (")
    assert errors[0].endswith("if it holds other Python objects and you trust where it came from, add --trust-pickle")
    assert not marker.exists() and not (tmp_path / "out.pth").exists()

    # a harmless object beside the weights (an argparse Namespace of training arguments): read when trusted
    torch.save({"model": san_state_dict(original), "args": argparse.Namespace(lr=1e-4)}, tmp_path / "san.pth")
    code, printed = run_script(MERGE_SAN, args + [tmp_path / "san.pth"], capsys)
    assert code == 1 and "add --trust-pickle" in printed.err
    code, printed = run_script(MERGE_SAN, args + [tmp_path / "san.pth", "--trust-pickle"], capsys)
    assert code == 0, printed.err
    merged = torch.load(tmp_path / "out.pth", weights_only=False)
    assert merged["args"].lr == 1e-4
    assert torch.equal(merged["model"]["clip_rec_head.proj"], pixelclip["visual.proj"])


def test_refuses_a_text_tower_that_differs_in_one_value(clips):
    """PixelCLIP never trains the text tower, so any difference at all (one element, by 2^-20) means another CLIP."""
    original, pixelclip = clips
    san = san_state_dict(original)
    nudged = dict(pixelclip)
    nudged["ln_final.weight"] = pixelclip["ln_final.weight"].clone()
    nudged["ln_final.weight"][0] += 2.0 ** -20
    with pytest.raises(SanWeightsError, match="text towers differ"):
        merge_into_san(san, nudged)
    report = merge_into_san(san, nudged, allow_other_text=True)
    assert report.text_max_abs_difference == pytest.approx(2.0 ** -20, rel=1e-3)


def test_an_openai_layout_export_merges_like_the_open_clip_one(clips, tmp_path):
    """The OpenAI-layout export holds three scalar entries beside the weights (input_resolution,
    context_length, vocab_size); they are no CLIP tensor SAN holds, and the merge is the open_clip one's."""
    from pixelclip_san.checkpoints import read_clip_state_dict

    original, pixelclip = clips
    scalars = {"input_resolution": torch.tensor(64), "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}
    torch.save({**pixelclip, **scalars}, tmp_path / "openai.pt")
    read = read_clip_state_dict(str(tmp_path / "openai.pt"))
    assert read.keys() == pixelclip.keys()
    a, b = san_state_dict(original), san_state_dict(original)
    merge_into_san(a, read)
    merge_into_san(b, pixelclip)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
