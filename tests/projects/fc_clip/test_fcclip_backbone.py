"""PixelCLIPFCCLIPBackbone (projects/FC-CLIP/pixelclip_fcclip) driven with exactly the calls and shapes
FC-CLIP's model makes."""
import open_clip
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode as CN
from detectron2.modeling import build_backbone, build_model

from pixelclip.clip.dense import dense_features
from pixelclip_fcclip.fcclip_backbone import VILD_TEMPLATES, PixelCLIPFCCLIPBackbone
from tests.conftest import make_tiny_cfg


def _fcclip_cfg(weights: str = "", embed_dim: int = 32):
    """What an FC-CLIP config holds: MODEL.FC_CLIP.* keys, our backbone name."""
    cfg = make_tiny_cfg("PixelCLIP-Tiny-ConvNeXt")
    cfg.MODEL.BACKBONE.NAME = "PixelCLIPFCCLIPBackbone"
    cfg.MODEL.FC_CLIP = CN()
    cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME = "PixelCLIP-Tiny-ConvNeXt"
    cfg.MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS = weights
    cfg.MODEL.FC_CLIP.EMBED_DIM = embed_dim
    return cfg


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone(_fcclip_cfg())


def _fcclip_text_classifier(backbone, class_names):
    """FC-CLIP's FCCLIP.get_text_classifier: templated texts -> normalise -> template mean -> normalise."""
    texts = [t.format(c) for c in class_names for t in VILD_TEMPLATES]
    classifier = backbone.get_text_classifier(texts, torch.device("cpu")).detach()
    classifier = classifier / classifier.norm(dim=-1, keepdim=True)
    classifier = classifier.reshape(len(class_names), len(VILD_TEMPLATES), -1).mean(1)
    return classifier / classifier.norm(dim=-1, keepdim=True)


def test_outputs_match_output_shape(backbone):
    assert isinstance(backbone, PixelCLIPFCCLIPBackbone)
    shapes = backbone.output_shape()
    assert {"stem", "res2", "res3", "res4", "res5", "clip_embedding"} <= set(shapes)
    assert [shapes[f"res{i}"].stride for i in range(2, 6)] == [4, 8, 16, 32]
    assert shapes["clip_embedding"].channels == backbone.dim_latent == 32 and shapes["clip_embedding"].stride == -1
    images = torch.randn(2, 3, 64, 96)  # FC-CLIP pads to SIZE_DIVISIBILITY 32
    assert backbone.size_divisibility == 32
    features = backbone(images)
    for name, feat in features.items():
        spec = shapes[name]
        assert feat.shape == (2, spec.channels, 64 // spec.stride, 96 // spec.stride), name
    assert "convnext" in backbone.model_name.lower()  # FC-CLIP branches on it
    assert not any(p.requires_grad for p in backbone.parameters())


def test_dense_map_is_pixelclips(backbone):
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = backbone.extract_features(images)["clip_dense"]
        torch.testing.assert_close(ours, dense_features(backbone.clip_model.visual, images), atol=1e-5, rtol=1e-5)


def test_one_hot_mask_pooling_and_visual_prediction(backbone):
    images = torch.randn(1, 3, 64, 96)
    features = backbone(images)
    clip_feature = features["clip_vis_dense"]  # 1×C×2×3
    h, w = clip_feature.shape[-2:]
    masks = torch.full((1, 2, h, w), -10.0)  # mask logits, as FC-CLIP's mask_pred_results
    masks[0, 0, 1, 2] = 10.0
    masks[0, 1, 0, 0] = 10.0
    pooled = backbone.mask_pool(clip_feature, masks)  # FC-CLIP: self.mask_pooling(clip_feature, mask_for_pooling)
    assert pooled.shape == (1, 2, clip_feature.shape[1])
    torch.testing.assert_close(pooled[0, 0], clip_feature[0, :, 1, 2])
    torch.testing.assert_close(pooled[0, 1], clip_feature[0, :, 0, 0])
    with torch.no_grad():
        embedded = backbone.visual_prediction_forward(pooled)  # B×Q×dim_latent
    assert embedded.shape == (1, 2, backbone.dim_latent)
    torch.testing.assert_close(embedded[0, 0], features["clip_dense"][0, :, 1, 2], atol=1e-5, rtol=1e-5)
    visual = backbone.clip_model.visual  # FC-CLIP's own formula: the trunk's pooled head on 1×1, then open_clip's head
    with torch.no_grad():
        fcclip = visual.head(visual.trunk.head(pooled.reshape(2, -1, 1, 1))).view(1, 2, -1)
    torch.testing.assert_close(embedded, fcclip, atol=1e-6, rtol=1e-6)
    # FC-CLIP resizes 1/4-resolution mask predictions to the CLIP feature size inside the pooling
    pooled_hr = backbone.mask_pool(clip_feature, torch.randn(1, 5, 16, 24))
    assert pooled_hr.shape == (1, 5, clip_feature.shape[1])


def test_text_side(backbone):
    classes = ["grass", "sky", "brick wall"]
    classifier = _fcclip_text_classifier(backbone, classes)
    torch.testing.assert_close(classifier.norm(dim=-1), torch.ones(3))
    texts = ["a photo of a cat.", "grass"]
    rows = backbone.get_text_classifier(texts, torch.device("cpu"))
    with torch.no_grad():  # open_clip's own text tower and tokenizer
        expected = F.normalize(backbone.clip_model.encode_text(open_clip.get_tokenizer(backbone.model_name)(texts)), dim=-1)
    torch.testing.assert_close(rows, expected, atol=1e-5, rtol=1e-5)
    vocab = backbone.get_vocabulary_classifier(classes)
    torch.testing.assert_close(vocab.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(vocab, classifier, atol=1e-5, rtol=1e-5)  # same template ensemble as FC-CLIP's
    tokens = backbone.tokenize_text(["a photo of a cat."])
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_text(tokens), backbone.clip_model.encode_text(tokens))
    # FC-CLIP scales its out-of-vocabulary logits by clamp(clip_model.logit_scale.exp(), 100): the CLIP's own
    # logit scale must reach it unchanged
    assert torch.equal(backbone.clip_model.logit_scale, open_clip.create_model("PixelCLIP-Tiny-ConvNeXt").logit_scale)


def test_config_line_loads_a_pixelclip_checkpoint(tmp_path):
    torch.manual_seed(3)
    pixelclip = build_model(make_tiny_cfg("PixelCLIP-Tiny-ConvNeXt"))
    with torch.no_grad():
        for p in pixelclip.backbone.clip_model.visual.parameters():
            p.add_(0.05)
    torch.save({"model": pixelclip.state_dict()}, tmp_path / "model_final.pth")
    backbone = build_backbone(_fcclip_cfg(str(tmp_path / "model_final.pth")))
    ours = pixelclip.backbone.clip_model.state_dict()
    for k, v in backbone.clip_model.state_dict().items():
        assert torch.equal(v, ours[k]), k
    # without FC-CLIP keys the PixelCLIP keys are read
    cfg = make_tiny_cfg("PixelCLIP-Tiny-ConvNeXt")
    cfg.MODEL.BACKBONE.NAME = "PixelCLIPFCCLIPBackbone"
    assert build_backbone(cfg).dim_latent == 32


def test_bad_configs():
    with pytest.raises(ValueError, match="EMBED_DIM"):
        build_backbone(_fcclip_cfg(embed_dim=768))
    cfg = _fcclip_cfg()
    cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME = "PixelCLIP-Tiny-ViT"
    with pytest.raises(TypeError, match="ConvNeXt"):
        build_backbone(cfg)


def test_text_side_on_the_sequence_first_open_clip_fcclip_was_written_for():
    import copy

    from pixelclip.clip.build import build_clip_model
    from tests.clip.test_text import _sequence_first_blocks, _sequence_first_encode_text, _SequenceFirstTransformer

    torch.manual_seed(0)
    model, tokenizer = build_clip_model("PixelCLIP-Tiny-ConvNeXt", "")
    legacy = copy.deepcopy(model)
    legacy.transformer = _SequenceFirstTransformer(_sequence_first_blocks(model.transformer))
    backbone = PixelCLIPFCCLIPBackbone(clip_model=legacy, tokenizer=tokenizer, model_name="PixelCLIP-Tiny-ConvNeXt")
    tokens = backbone.tokenize_text(["a photo of a cat.", "There is a large grass in the scene."])
    with torch.no_grad():
        expected = _sequence_first_encode_text(legacy, tokens)  # FC-CLIP's own CLIP.encode_text
        torch.testing.assert_close(backbone.encode_text(tokens), expected, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(backbone.encode_text(tokens), model.encode_text(tokens), atol=1e-6, rtol=1e-6)
