"""Inference logits against independent computations: cosine of dense features and text embeddings,
sliding windows averaged where they overlap, flip averaging."""
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model

from pixelclip.config import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD
from tests.conftest import make_tiny_cfg

VOCABULARY = ["sky", "grass, lawn", "dog", "road"]


def _model(**overrides):
    torch.manual_seed(0)
    model = build_model(make_tiny_cfg(**overrides)).eval()
    model.set_vocabulary(VOCABULARY)
    return model


def _image(h, w, seed=0):
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_sem_seg_logits_are_the_cosine_of_dense_features_and_text():
    model = _model()  # CLIP_RESOLUTION 64×64, FEATURE_RESOLUTION 16
    image = _image(64, 64)
    out = model([{"image": image, "height": 16, "width": 16}])[0]["sem_seg"]  # asked at the feature grid: no resize
    mean, std = torch.tensor(CLIP_PIXEL_MEAN).view(3, 1, 1), torch.tensor(CLIP_PIXEL_STD).view(3, 1, 1)
    with torch.no_grad():
        feats = model.backbone(((image.float() - mean) / std)[None])["clip_dense"]  # 1×C×4×4
        feats = F.interpolate(feats, size=(16, 16), mode="bilinear", align_corners=False)[0].double()
        text = model.classifier(VOCABULARY).double()  # K×C, unit norm
    expected = torch.einsum("chw,kc->khw", feats, text) / (feats.norm(dim=0)[None] * text.norm(dim=1)[:, None, None])
    assert out.shape == (len(VOCABULARY), 16, 16)
    assert torch.allclose(out.double(), expected, atol=1e-6)


def test_slide_logits_average_the_overlapping_windows():
    """112×112 image, 64×64 windows, overlap 0.25: window origins 0 and 48 on each axis (stride int(64 × 0.75)),
    i.e. 0 and 12 on the 28×28 grid of the logits (16 per window). Each logit is the mean of the windows
    covering it, each window scored as a whole image of its own."""
    image = _image(112, 112, seed=1)
    slide = _model(**{"MODEL.PIXELCLIP.TEST.MODE": "slide", "MODEL.PIXELCLIP.TEST.SLIDE_OVERLAP": 0.25})
    out = slide([{"image": image, "height": 28, "width": 28}])[0]["sem_seg"]
    whole = _model()
    total, count = torch.zeros(len(VOCABULARY), 28, 28), torch.zeros(1, 28, 28)
    for y in (0, 48):
        for x in (0, 48):
            crop = image[:, y:y + 64, x:x + 64]
            window = whole([{"image": crop, "height": 16, "width": 16}])[0]["sem_seg"]
            total[:, y // 4:y // 4 + 16, x // 4:x // 4 + 16] += window
            count[:, y // 4:y // 4 + 16, x // 4:x // 4 + 16] += 1
    assert count.min() == 1 and count.max() == 4
    assert torch.allclose(out, total / count, atol=1e-6)


def test_flip_averages_with_the_flipped_image_flipped_back():
    image = _image(64, 96, seed=2)
    plain = _model()
    flip = _model(**{"MODEL.PIXELCLIP.TEST.FLIP": True})
    ask = {"height": 16, "width": 24}
    a = plain([{"image": image, **ask}])[0]["sem_seg"]
    b = plain([{"image": image.flip(-1), **ask}])[0]["sem_seg"].flip(-1)
    out = flip([{"image": image, **ask}])[0]["sem_seg"]
    assert (a - b).abs().max() > 1e-3  # the flipped image scores differently
    assert torch.allclose(out, (a + b) / 2, atol=1e-6)


def test_autocast_runs_the_image_encoder_in_the_named_dtype_and_scores_in_float32():
    """TEST.AUTOCAST: fp16 -> float16, bf16 -> bfloat16, "" -> float32 features from the image encoder; the
    cosine logits are float32 in every case."""
    image = _image(64, 64, seed=3)
    model = _model(**{"MODEL.PIXELCLIP.TEST.AUTOCAST": "fp16"})
    assert model.autocast == "fp16"
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(out["clip_dense"].dtype))
    for autocast, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("", torch.float32)):
        model.autocast = autocast
        out = model([{"image": image, "height": 16, "width": 16}])[0]["sem_seg"]
        assert seen.pop() == dtype, autocast
        assert out.dtype == torch.float32 and out.shape == (len(VOCABULARY), 16, 16)


def test_set_vocabulary_refuses_an_empty_one_and_keeps_a_list():
    from types import SimpleNamespace

    import pytest

    from pixelclip.modeling.pixelclip import PixelCLIP

    model = SimpleNamespace(vocabulary=["sky"])
    for empty in ([], (), None):
        with pytest.raises(ValueError, match="the vocabulary is empty"):
            PixelCLIP.set_vocabulary(model, empty)
    assert model.vocabulary == ["sky"]
    PixelCLIP.set_vocabulary(model, ("dog", "road"))
    assert model.vocabulary == ["dog", "road"]
