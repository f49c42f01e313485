"""The procedural world: deterministic scenes, truthful captions without positions."""
import re

import numpy as np

from pixelclip.synthetic.world import (CLASS_NAMES, CLASS_PARTS, NUM_STUFF, PART_TYPES, WorldConfig, generate_scene,
                                      world_metadata)

POSITION_WORDS = ("left", "right", "top", "bottom", "above", "below", "middle", "center", "corner", "near")


def test_scene_is_deterministic_and_well_formed():
    a, b, c = generate_scene(3), generate_scene(3), generate_scene(4)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (96, 96, 3) and a.image.dtype == np.uint8
    assert a.labels.shape == (96, 96) and a.labels.max() < len(CLASS_NAMES)
    # region ids are 1..R and each region holds exactly one class
    ids = np.unique(a.regions)
    assert ids[0] == 1 and np.array_equal(ids, np.arange(1, len(ids) + 1))
    for r in ids:
        assert len(np.unique(a.labels[a.regions == r])) == 1


def test_captions_name_the_present_classes_and_no_position():
    cfg = WorldConfig()
    for seed in range(40):
        s = generate_scene(seed, cfg)
        counts = np.bincount(s.labels.ravel(), minlength=len(CLASS_NAMES))
        expected = {CLASS_NAMES[c] for c in range(len(CLASS_NAMES)) if counts[c] >= cfg.min_visible_fraction * s.labels.size}
        words = set(re.findall(r"[a-z]+", s.caption))
        assert expected == {c for c in CLASS_NAMES if c in words}, (s.caption, expected)
        assert not words & set(POSITION_WORDS), s.caption
        assert any(c >= NUM_STUFF for c in s.present) or counts[NUM_STUFF:].sum() < 0.015 * s.labels.size


def test_every_class_occurs_and_metadata():
    seen = np.zeros(len(CLASS_NAMES), bool)
    for seed in range(60):
        seen[np.unique(generate_scene(seed, WorldConfig(image_size=64)).labels)] = True
    assert seen.all()
    meta = world_metadata()
    assert meta["stuff_classes"] == list(CLASS_NAMES) and len(meta["stuff_colors"]) == len(CLASS_NAMES)


def test_parts_are_shared_and_pairs_are_unique():
    # the premise: a part (local appearance) is ambiguous between four classes, a pair of parts is not
    assert len(CLASS_PARTS) == len(CLASS_NAMES) and len({frozenset(p) for p in CLASS_PARTS}) == len(CLASS_PARTS)
    for part in range(len(PART_TYPES)):
        owners = [c for c, pair in enumerate(CLASS_PARTS) if part in pair]
        assert len(owners) == 4 and sum(c < NUM_STUFF for c in owners) == 2, (PART_TYPES[part], owners)


def test_a_region_is_painted_with_its_class_parts_only(monkeypatch):
    import pixelclip.synthetic.world as world

    used = []

    def flat_part(rng, part, n, cfg):  # each part paints its own id, so the painted pixels say which part is where
        used.append(part)
        return np.full((n, n, 3), part / 10.0, np.float32)

    monkeypatch.setattr(world, "_part_texture", flat_part)
    cfg = WorldConfig()
    region = np.zeros((96, 96), bool)
    region[10:70, 20:90] = True
    for cls in range(len(CLASS_NAMES)):
        used.clear()
        image = np.full((96, 96, 3), -1.0, np.float32)
        world._paint_class(np.random.default_rng(cls), image, region, cls, cfg.stuff_part_scale, cfg)
        assert sorted(used) == sorted(CLASS_PARTS[cls])
        assert (image[~region] == -1).all()  # nothing outside the region
        share = {p: float(np.mean(np.isclose(image[region][:, 0], p / 10.0))) for p in CLASS_PARTS[cls]}
        assert all(cfg.part_fraction[0] - 0.02 <= v <= cfg.part_fraction[1] + 0.02 for v in share.values()), share
        assert sum(share.values()) == 1.0
