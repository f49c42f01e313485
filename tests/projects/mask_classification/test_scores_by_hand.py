"""ZeroShotMaskClassifier's scores against hand computations on an 8×8 image, 2 masks and 3 classes:
the image reaches CLIP in RGB (the proposal model gets its own channel order), logits are
exp(logit_scale) · cos (CLIP's scale, clamped at 100), softmax runs over the classes (for masks and for
uncovered pixels), and a proposal model's 'no object' (void) column is dropped before the ensemble.

CLIP is stubbed where its output is known: the dense "features" are the CLIP-normalised image itself (3
channels), and the class embeddings are three fixed 3-vectors. Every resize is 8 -> 8 (an identity)."""
import math

import numpy as np
import torch

from pixelclip_maskcls import add_mask_classification_config
from pixelclip_maskcls.inference import masks_from_output
from pixelclip_maskcls.zero_shot_mask_classifier import ZeroShotMaskClassifier
from tests.conftest import make_tiny_cfg

# OpenAI CLIP's normalisation (RGB, 0-1 units), as published with the model
MEAN = np.array([0.48145466, 0.4578275, 0.40821073]) * 255
STD = np.array([0.26862954, 0.26130258, 0.27577711]) * 255
TEXT = np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.5], [-0.3, 0.1, 1.0]])  # K = 3 class embeddings (not unit)
# three nearly parallel class embeddings: cosines within about 0.02, so a scale of 100 and of 250 give other
# probabilities (with TEXT both are one-hot to float precision)
CLOSE_TEXT = np.array([[1.0, 0.2, 0.0], [1.0, 0.22, 0.02], [1.0, 0.18, -0.02]])
LEFT, RIGHT = (200, 30, 60), (20, 220, 90)  # RGB colours of the image's two halves
VOCABULARY = ["a", "b", "c"]


def _image():
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    image[:, :, :4] = torch.tensor(LEFT, dtype=torch.uint8)[:, None, None]
    image[:, :, 4:] = torch.tensor(RIGHT, dtype=torch.uint8)[:, None, None]
    return image


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _clip_probs(rgb, scale, text=TEXT, clamp=True):
    """softmax over the classes of min(scale, 100) · cos(normalised colour, class embedding) -> K (CLIP
    clamps its logit scale at 100)."""
    f = (np.array(rgb, dtype=np.float64) - MEAN) / STD
    cos = text @ f / (np.linalg.norm(text, axis=1) * np.linalg.norm(f))
    return _softmax((min(scale, 100.0) if clamp else scale) * cos)


def _model(logit_scale, text=TEXT, **kwargs):
    cfg = make_tiny_cfg(config_funcs=(add_mask_classification_config,))
    cfg.MODEL.META_ARCHITECTURE = "ZeroShotMaskClassifier"
    torch.manual_seed(0)
    model = ZeroShotMaskClassifier(cfg, clip_resolution=(8, 8), pool_resolution=8, vocabulary=VOCABULARY,
                                   **kwargs).eval()
    model.backbone.forward = lambda images: {"clip_dense": images.clone()}  # B×3×8×8 "features"
    model.classifier.forward = lambda names: torch.tensor(text, dtype=torch.float32)
    with torch.no_grad():
        model.backbone.clip_model.logit_scale.fill_(math.log(logit_scale))
    return model


def test_mask_and_pixel_probabilities_by_hand():
    """Mask 0: the left half; mask 1: columns 4-5 of the right half; columns 6-7 are covered by no
    mask and take the per-pixel probabilities. Scale exp(log 7) = 7; then exp(log 250), clamped to 100."""
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :, :4] = True
    masks[1, :, 4:6] = True
    for scale, text in ((7.0, TEXT), (250.0, CLOSE_TEXT)):
        model = _model(scale, text)
        out = model([{"image": _image(), "height": 8, "width": 8, "masks": masks}])[0]
        left, right = _clip_probs(LEFT, scale, text), _clip_probs(RIGHT, scale, text)
        expected = torch.tensor(np.stack([left, right]), dtype=torch.float32)
        torch.testing.assert_close(out["mask_probs"], expected, rtol=0, atol=1e-5)
        sem = out["sem_seg"]  # K×8×8
        torch.testing.assert_close(sem[:, :, :4], expected[0, :, None, None].expand(3, 8, 4), rtol=0, atol=1e-5)
        torch.testing.assert_close(sem[:, :, 4:6], expected[1, :, None, None].expand(3, 8, 2), rtol=0, atol=1e-5)
        torch.testing.assert_close(sem[:, :, 6:], expected[1, :, None, None].expand(3, 8, 2), rtol=0, atol=1e-5)
    assert not np.allclose(_clip_probs(LEFT, 7.0), _clip_probs(LEFT[::-1], 7.0), atol=1e-2)  # BGR would differ
    assert not np.allclose(_clip_probs(LEFT, 7.0), _clip_probs(LEFT, math.log(7.0)), atol=1e-2)  # so would no exp
    assert not np.allclose(_clip_probs(LEFT, 250.0, CLOSE_TEXT), _clip_probs(LEFT, 250.0, CLOSE_TEXT, clamp=False),
                           atol=1e-2)  # and no clamp


def test_crop_mode_scores_the_rgb_crops_by_hand():
    """ZegFormer's crops: the two halves, each cut to a 4×4 crop (its box is 4 columns wide, 8 rows high: the
    samples fall on pixel centres / between two pixels of one colour, so the crop is the uniform colour);
    the stub image tower embeds a crop as its mean colour (CLIP-normalised)."""
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :, :4] = True
    masks[1, :, 4:] = True
    model = _model(7.0, mode="crop", crop_size=4)
    model.backbone.encode_image = lambda crops: crops.mean(dim=(2, 3))  # N×3×4×4 -> N×3
    out = model([{"image": _image(), "height": 8, "width": 8, "masks": masks}])[0]
    expected = np.stack([_clip_probs(LEFT, 7.0), _clip_probs(RIGHT, 7.0)])
    torch.testing.assert_close(out["mask_probs"], torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-5)


def test_bgr_inputs_reach_clip_as_rgb():
    """INPUT.FORMAT BGR (the mapper reads images so): CLIP still gets RGB, in dense and in crop mode, and
    a BGR proposal model gets the image as it is."""
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :, :4] = True
    masks[1, :, 4:] = True
    bgr = _image().flip(0)
    expected = torch.tensor(np.stack([_clip_probs(LEFT, 7.0), _clip_probs(RIGHT, 7.0)]), dtype=torch.float32)
    for mode in ("dense", "crop"):
        model = _model(7.0, mode=mode, crop_size=4, image_format="BGR")
        model.backbone.encode_image = lambda crops: crops.mean(dim=(2, 3))
        out = model([{"image": bgr, "height": 8, "width": 8, "masks": masks}])[0]
        torch.testing.assert_close(out["mask_probs"], expected, rtol=0, atol=1e-5, msg=mode)
    proposals = _Proposals()
    _model(7.0, proposal_model=proposals, proposal_format="BGR", image_format="BGR")([{"image": bgr, "height": 8,
                                                                                       "width": 8}])
    assert torch.equal(proposals.seen[0], bgr)


class _Proposals(torch.nn.Module):
    """A D2 mask model: records the image it is given; two masks (left, right half) with Mask2Former-style
    class logits N×(K+1), the last column 'no object'."""

    LOGITS = np.array([[2.0, 0.0, 1.0, 5.0], [0.0, 3.0, 1.0, -1.0]])

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, batched_inputs):
        outs = []
        for x in batched_inputs:
            self.seen.append(x["image"].clone())
            masks = torch.zeros(2, 8, 8, dtype=torch.bool)
            masks[0, :, :4] = True
            masks[1, :, 4:] = True
            outs.append({"pred_masks": masks, "pred_logits": torch.tensor(self.LOGITS, dtype=torch.float32)})
        return outs


def test_proposals_get_their_channel_order_and_the_void_column_is_dropped():
    """The inputs are RGB, the proposal model takes BGR: it gets the image with its channels reversed,
    CLIP the RGB one. Its class probabilities (softmax over K + 1, void dropped, renormalised = softmax
    over the first K logits) enter FC-CLIP's geometric ensemble, p ∝ p_in^(1-β) · p_clip^β for classes
    it was not trained on (no SEEN_CLASSES: all of them), β = 0.8."""
    proposals = _Proposals()
    model = _model(7.0, proposal_model=proposals, proposal_format="BGR", image_format="RGB", beta=0.8)
    image = _image()
    out = model([{"image": image, "height": 8, "width": 8}])[0]
    (seen,) = proposals.seen
    assert torch.equal(seen, image[[2, 1, 0]])
    in_vocab = _softmax(_Proposals.LOGITS[:, :3])
    clip = np.stack([_clip_probs(LEFT, 7.0), _clip_probs(RIGHT, 7.0)])
    expected = in_vocab ** 0.2 * clip ** 0.8
    expected /= expected.sum(axis=1, keepdims=True)
    torch.testing.assert_close(out["mask_probs"], torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-5)

    same = _Proposals()  # same channel order: the image as it is
    _model(7.0, proposal_model=same, proposal_format="RGB", image_format="RGB")([{"image": image, "height": 8,
                                                                                    "width": 8}])
    assert torch.equal(same.seen[0], image)


def test_void_column_by_hand():
    """``pred_logits`` N×(K+1): K probabilities per mask, softmax over all K + 1 with the last (void) column
    dropped and the rest renormalised; N×K logits are a plain softmax."""
    logits = torch.tensor(_Proposals.LOGITS, dtype=torch.float32)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    _, probs = masks_from_output({"pred_masks": masks, "pred_logits": logits}, num_classes=3)
    e = np.exp(_Proposals.LOGITS)
    expected = e[:, :3] / e[:, :3].sum(axis=1, keepdims=True)  # e.g. row 0: e^2, e^0, e^1 over their sum
    torch.testing.assert_close(probs, torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-6)
    _, probs = masks_from_output({"pred_masks": masks, "pred_logits": logits[:, :3]}, num_classes=3)
    torch.testing.assert_close(probs, torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-6)
