"""SAM-like masks follow the regions (no labels); the random control keeps sizes, not places."""
import inspect

import numpy as np

from pixelclip.synthetic.masks import MaskNoiseConfig, random_masks_like, region_purity, sam_like_masks
from pixelclip.synthetic.world import generate_scene


def test_sam_like_masks_are_over_segmented_noisy_and_label_free():
    assert list(inspect.signature(sam_like_masks).parameters) == ["regions", "seed", "cfg"]
    purities, counts = [], []
    for seed in range(12):
        s = generate_scene(seed)
        masks = sam_like_masks(s.regions, seed)
        assert masks.dtype == bool and masks.shape[1:] == s.labels.shape
        areas = masks.reshape(len(masks), -1).sum(1)
        assert (np.diff(areas) <= 0).all() and areas.min() >= MaskNoiseConfig().min_area  # largest first
        purities.append(region_purity(masks, s.labels)[0])
        counts.append((len(masks), len(np.unique(s.regions))))
        # deterministic
        assert np.array_equal(masks, sam_like_masks(s.regions, seed))
    assert np.mean(purities) > 0.85  # noisy borders, but the masks follow the regions
    assert sum(n for n, _ in counts) > sum(r for _, r in counts)  # over-segmented overall


def test_exact_masks_without_noise():
    s = generate_scene(5)
    cfg = MaskNoiseConfig(split_prob=0.0, drop_prob=0.0, border_noise=0.0, min_area=1)
    masks = sam_like_masks(s.regions, 0, cfg)
    assert region_purity(masks, s.labels)[0] == 1.0 and masks.any(0).all()


def test_random_masks_keep_areas_and_ignore_the_image():
    purity_sam, purity_rand = [], []
    for seed in range(12):
        s = generate_scene(seed)
        masks = sam_like_masks(s.regions, seed)
        control = random_masks_like(masks, seed)
        assert control.shape == masks.shape
        assert np.array_equal(control.reshape(len(masks), -1).sum(1), masks.reshape(len(masks), -1).sum(1))
        purity_sam.append(region_purity(masks, s.labels)[0])
        purity_rand.append(region_purity(control, s.labels)[0])
    assert np.mean(purity_rand) < np.mean(purity_sam) - 0.1
