"""Mask generation over a folder: valid files from tiny SAM and DINO, resume after an
interruption, disjoint shards, unreadable images skipped."""
import importlib.util
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelclip.data.datasets.unlabeled_folder import load_unlabeled_folder
from pixelclip.data.mask_io import TEMP_MARKER, encode_masks, read_mask_file
from pixelclip.masks import BinaryMaskAdapter, DinoKMeansMasker, SamMasker, generate_masks, select_shard
from tests.masks.tiny_models import TINY_SAM_GENERATOR, tiny_sam, tiny_vit, write_images

NAMES = ["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.png", "e.png"]
REPO = Path(__file__).resolve().parents[2]


def _load_tool():
    spec = importlib.util.spec_from_file_location("generate_masks_tool", REPO / "tools" / "generate_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_outputs(images: Path, masks: Path, names=NAMES):
    """Every image has exactly one valid file (with masks), and no temp file remains."""
    files = sorted(str(p.relative_to(masks)) for p in masks.rglob("*") if p.is_file() and "summary" not in p.name)
    assert files == sorted(os.path.splitext(n)[0] + ".json" for n in names)
    assert not [p for p in masks.rglob("*") if TEMP_MARKER in p.name]
    for name in names:
        record = read_mask_file(masks / (os.path.splitext(name)[0] + ".json"), check_rle=True)
        assert record["image"]["file_name"] == name
        assert len(record["annotations"]) > 0


class CountingMasker:
    """Wraps a masker, records the images it saw, and optionally interrupts at call ``stop_at``."""

    def __init__(self, masker, stop_at=None):
        self.masker, self.stop_at, self.calls = masker, stop_at, 0

    def __call__(self, image):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return self.masker(image)


def _dino_masker():
    return BinaryMaskAdapter(DinoKMeansMasker(tiny_vit(), num_clusters=4, kmeans_iters=5, input_size=64, seed=0).mask_image)


def test_sam_end_to_end_writes_valid_files_and_a_summary(tmp_path):
    write_images(tmp_path / "images", NAMES)
    summary = generate_masks(SamMasker(tiny_sam(), **TINY_SAM_GENERATOR), str(tmp_path / "images"),
                             str(tmp_path / "masks"), progress=False)
    _check_outputs(tmp_path / "images", tmp_path / "masks")
    assert summary["processed"] == len(NAMES) and summary["failed"] == 0
    assert summary["masks_per_image"]["mean"] > 0 and 0 < summary["pixel_coverage"]["mean"] <= 1
    assert summary["seconds_per_image"] > 0
    saved = json.loads((tmp_path / "masks" / "generate_masks_summary.shard0of1.json").read_text())
    assert saved["processed"] == len(NAMES)


def test_dino_end_to_end(tmp_path):
    write_images(tmp_path / "images", NAMES)
    summary = generate_masks(_dino_masker(), str(tmp_path / "images"), str(tmp_path / "masks"), progress=False)
    _check_outputs(tmp_path / "images", tmp_path / "masks")
    assert summary["pixel_coverage"]["min"] == pytest.approx(1.0)  # clusters tile the image
    assert 1 <= summary["masks_per_image"]["max"] <= 4


def test_interrupted_run_resumes_without_losing_or_redoing_work(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_images(images, NAMES)
    first = CountingMasker(_dino_masker(), stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        generate_masks(first, str(images), str(masks), progress=False)
    done = sorted(p for p in masks.rglob("*.json"))
    assert len(done) == 2
    stamps = {p: p.stat().st_mtime_ns for p in done}
    # A writer killed between creating its temp file and renaming it leaves this behind:
    stale = masks / "sub" / f"c.json{TEMP_MARKER}999-deadbeef"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text('{"image": {"file_na')

    second = CountingMasker(_dino_masker())
    summary = generate_masks(second, str(images), str(masks), progress=False)
    assert second.calls == len(NAMES) - 2 and summary["already_done"] == 2
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    _check_outputs(images, masks)


def test_verify_existing_regenerates_broken_files(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_images(images, NAMES[:2])
    generate_masks(_dino_masker(), str(images), str(masks), progress=False)
    (masks / "a.json").write_text("{broken")
    counting = CountingMasker(_dino_masker())
    generate_masks(counting, str(images), str(masks), progress=False)
    assert counting.calls == 0  # an existing file counts as done by default
    generate_masks(counting, str(images), str(masks), verify_existing=True, progress=False)
    assert counting.calls == 1
    _check_outputs(images, masks, NAMES[:2])


def test_shards_are_disjoint_and_cover_every_image(tmp_path):
    names = [f"img_{i:03d}.png" for i in range(40)]
    shards = [select_shard(names, i, 3) for i in range(3)]
    assert sorted(sum(shards, [])) == names and all(shards)
    assert select_shard(list(reversed(names)), 1, 3) == list(reversed(shards[1]))  # order-independent
    with pytest.raises(ValueError, match="--shard"):
        select_shard(names, 3, 3)

    write_images(tmp_path / "images", NAMES)
    seen = []
    for shard in range(2):
        counting = CountingMasker(_dino_masker())
        summary = generate_masks(counting, str(tmp_path / "images"), str(tmp_path / "masks"),
                                 shard=shard, num_shards=2, progress=False)
        seen.append(counting.calls)
        assert summary["images_in_shard"] == counting.calls
    assert sum(seen) == len(NAMES)
    _check_outputs(tmp_path / "images", tmp_path / "masks")
    assert len(list((tmp_path / "masks").glob("generate_masks_summary.shard*of2.json"))) == 2


def test_unreadable_image_is_skipped_and_reported(tmp_path, caplog):
    write_images(tmp_path / "images", NAMES[:2])
    data = (tmp_path / "images" / "b.jpg").read_bytes()
    (tmp_path / "images" / "b.jpg").write_bytes(data[: len(data) // 3])
    summary = generate_masks(_dino_masker(), str(tmp_path / "images"), str(tmp_path / "masks"), progress=False)
    assert summary["failed"] == 1 and summary["failed_files"] == ["b.jpg"] and summary["processed"] == 1
    assert "b.jpg" in caplog.text and not (tmp_path / "masks" / "b.json").exists()


def test_command_line_sam_passes_its_knobs(tmp_path, monkeypatch):
    tool = _load_tool()
    built = {}

    def fake_build_sam(model_type, checkpoint, device="cpu"):
        built.update(model_type=model_type, checkpoint=checkpoint, device=device)
        return tiny_sam()

    monkeypatch.setattr(tool, "build_sam", fake_build_sam)
    write_images(tmp_path / "images", NAMES[:2])
    summary = tool.main([
        "--input", str(tmp_path / "images"), "--output", str(tmp_path / "masks"), "--method", "sam",
        "--sam-checkpoint", "sam.pth", "--model-type", "vit_b", "--device", "cpu", "--no-progress",
        "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
        "--box-nms-thresh", "0.9", "--summary", str(tmp_path / "summary.json"),
    ])
    assert built == {"model_type": "vit_b", "checkpoint": "sam.pth", "device": "cpu"}
    assert summary["options"]["points_per_side"] == 4 and "clusters" not in summary["options"]
    assert json.loads((tmp_path / "summary.json").read_text())["method"] == "sam"
    _check_outputs(tmp_path / "images", tmp_path / "masks", NAMES[:2])


class ScriptedMasker:
    """Records each image it gets; call n returns the n-th list of masks (72×96 images)."""

    def __init__(self, masks_per_call):
        self.masks_per_call, self.images = masks_per_call, []

    def __call__(self, image):
        self.images.append(image.copy())
        return encode_masks(self.masks_per_call[len(self.images) - 1])


def _rows(*spans, h=72, w=96):
    """Masks covering whole rows [a, b) of an h×w image, one per span."""
    masks = np.zeros((len(spans), h, w), dtype=bool)
    for k, (a, b) in enumerate(spans):
        masks[k, a:b] = True
    return masks


def test_summary_statistics_and_rgb_images_by_hand(tmp_path):
    """Three 72×96 images get 0, 1 and 3 masks; coverage is the union's share of the pixels: 0,
    36/72 (rows 0-35) and 54/72 (rows 0-35 ∪ 18-53 ∪ one pixel inside). The masker gets RGB images, as
    PIL reads them."""
    names = ["a.png", "b.png", "sub/c.png"]
    write_images(tmp_path / "images", names)
    three = _rows((0, 36), (18, 54), (40, 41))
    three[2] = False
    three[2, 40, 7] = True
    masker = ScriptedMasker([_rows(), _rows((0, 36)), three])
    summary = generate_masks(masker, str(tmp_path / "images"), str(tmp_path / "masks"), progress=False)
    assert summary["processed"] == 3 and summary["images_without_masks"] == 1
    assert summary["masks_per_image"] == pytest.approx({"mean": 4 / 3, "min": 0, "max": 3})
    assert summary["pixel_coverage"] == pytest.approx({"mean": (0.5 + 0.75) / 3, "min": 0, "max": 0.75})
    rgb = [np.asarray(Image.open(tmp_path / "images" / n).convert("RGB")) for n in names]
    assert all(any(np.array_equal(seen, im) for im in rgb) for seen in masker.images)
    assert not all(np.array_equal(im, im[..., ::-1]) for im in rgb)  # BGR would differ

    record = read_mask_file(tmp_path / "masks" / "sub" / "c.json", allow_empty=True)
    listed = load_unlabeled_folder(str(tmp_path / "images"), str(tmp_path / "masks"))
    assert record["image"] == {"file_name": "sub/c.png", "height": 72, "width": 96, "image_id": "sub/c"}
    assert listed[2]["image_id"] == "sub/c" and listed[2]["mask_file"] == str(tmp_path / "masks" / "sub" / "c.json")

    # A valid file without masks (an image where the masker found nothing) is done, also when verified.
    again = ScriptedMasker([])
    generate_masks(again, str(tmp_path / "images"), str(tmp_path / "masks"), verify_existing=True, progress=False)
    assert again.images == []


def test_shards_are_crc32_of_the_path_and_leave_other_shards_temp_files_alone(tmp_path):
    """The shard of an image is CRC-32 of its relative path modulo the shard count (zlib's, the
    documented rule); a run removes the temp files of its own targets only: another shard's writer may
    be renaming its file at that moment."""
    for n in (2, 3):
        for i in range(n):
            assert select_shard(NAMES, i, n) == [p for p in NAMES if zlib.crc32(p.encode()) % n == i]
    write_images(tmp_path / "images", NAMES)
    mine = [p for p in NAMES if zlib.crc32(p.encode()) % 2 == 0]
    theirs = [p for p in NAMES if zlib.crc32(p.encode()) % 2 == 1]
    assert mine and theirs
    stale = {}
    for name in (mine[0], theirs[0]):
        path = tmp_path / "masks" / (os.path.splitext(name)[0] + f".json{TEMP_MARKER}123-0123abcd")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{")
        stale[name] = path
    generate_masks(_dino_masker(), str(tmp_path / "images"), str(tmp_path / "masks"), shard=0, num_shards=2,
                   progress=False)
    assert not stale[mine[0]].exists() and stale[theirs[0]].exists()
