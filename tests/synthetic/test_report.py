"""The demo's claim checks (pixelclip/synthetic/report.py) on hand-made numbers."""
from pixelclip.synthetic.report import build_results, format_results_md

LABELS = {"clip": "CLIP", "pixelclip": "PixelCLIP", "random_masks": "random masks"}
HEADROOM = {"dense": 20.0, "region_pooled": 30.0, "mask_pooled": 26.0, "region_pooled_gain": 10.0,
            "mask_pooled_gain": 6.0, "num_images": 4}


def _results(pixelclip, random_masks):
    return build_results(HEADROOM, 20.0, {"pixelclip": pixelclip, "random_masks": random_masks}, LABELS, {}, {}, {})


def test_target_met_when_pixelclip_gains_5_and_the_control_less_than_half():
    r = _results({0: 26.0, 1: 25.0}, {0: 21.0, 1: 22.0})  # gains +5.5 and +1.5 (< 2.75)
    c = r["checks"]
    assert (c["pixelclip_gain"], c["random_masks_gain"]) == (5.5, 1.5)
    assert c["pixelclip_beats_clip_by_5"] and c["random_masks_gain_below_half"] and c["headroom_at_least_5"]
    # paired differences 5 and 3: mean 4, sample standard deviation sqrt(2) = 1.41
    assert r["headline"] == {"pixelclip_minus_random_masks": 4.0, "std": 1.41, "per_seed": {"seed0": 5.0, "seed1": 3.0}}
    assert "The target is met." in format_results_md(r)


def test_control_check_fails_when_pixelclip_does_not_gain():
    # both below CLIP: -1.5 < 0.5 * -1.0 would hold arithmetically, but there is no gain to halve
    r = _results({0: 19.0, 1: 19.0}, {0: 18.0, 1: 19.0})
    c = r["checks"]
    assert (c["pixelclip_gain"], c["random_masks_gain"]) == (-1.0, -1.5)
    assert c["pixelclip_beats_clip_by_5"] is False and c["random_masks_gain_below_half"] is False
    md = format_results_md(r)
    assert "not met: PixelCLIP does not gain over CLIP" in md and "The target is **not met**." in md
