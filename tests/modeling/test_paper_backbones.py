"""The four paper backbones, real architectures (open_clip's configs, random weights), built from the
repository's configs/pixelclip_*.yaml: what open_clip builds, the dense path against an independent
per-position computation, one training step, inference against open_clip's own text encoder, and the
OpenAI export's sizes. Each big model is built once for this module; inputs are tiny (2×2 feature grids,
K = 2 prompts: the text tower, run on 77 tokens per prompt, is most of the cost)."""
import open_clip
import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from pixelclip import get_pixelclip_cfg
from pixelclip.clip.dense import dense_features
from pixelclip.export import openai_state_dict
from pixelclip.solver import build_optimizer
from tests.conftest import ROOT
from tests.test_export import _openai_build_model_reader

GRID = 2  # dense feature cells per side
# config -> (open_clip architecture, input pixels per feature cell)
PAPER_CONFIGS = {
    "configs/pixelclip_vitb.yaml": ("ViT-B-16-quickgelu", 16),
    "configs/pixelclip_vitl.yaml": ("ViT-L-14-quickgelu", 14),
    "configs/pixelclip_convnext_b.yaml": ("convnext_base_w_320", 32),
    "configs/pixelclip_convnext_l.yaml": ("convnext_large_d_320", 32),
}
VOCABULARY = ["sky", "person, human being"]


@pytest.fixture(scope="module", params=sorted(PAPER_CONFIGS))
def paper(request):
    name, stride = PAPER_CONFIGS[request.param]
    side = GRID * stride
    cfg = get_pixelclip_cfg(str(ROOT / request.param), [
        "MODEL.DEVICE", "cpu", "MODEL.PIXELCLIP.CLIP_PRETRAINED", "", "MODEL.PIXELCLIP.CLIP_RESOLUTION", f"({side}, {side})",
        "MODEL.PIXELCLIP.NUM_PROMPTS", "2", "MODEL.PIXELCLIP.MASK_RESOLUTION", "8",
        "MODEL.PIXELCLIP.TEST.TEMPLATES", "single", "MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION", str(GRID),
        "DATASETS.TRAIN", "()", "DATASETS.TEST", "()"])
    assert cfg.MODEL.PIXELCLIP.CLIP_MODEL_NAME == name  # the yaml names the paper's architecture
    torch.manual_seed(0)
    model = build_model(cfg)
    yield cfg, model, open_clip.get_model_config(name)
    del model


def _vit_dense_reference(visual, images):
    """MaskCLIP-style value path written out with the blocks' own layers (patch embedding, bicubic
    positions, all blocks but the last, then v = out_proj(v_proj(ln_1 x)) + x_cls, its MLP, ln_post, proj)."""
    x = visual.conv1(images)
    b, d, h, w = x.shape
    x = torch.cat([visual.class_embedding.view(1, 1, d).expand(b, 1, d), x.flatten(2).transpose(1, 2)], dim=1)
    pos = visual.positional_embedding
    g = round((pos.shape[0] - 1) ** 0.5)
    grid = F.interpolate(pos[1:].reshape(1, g, g, d).permute(0, 3, 1, 2), size=(h, w), mode="bicubic",
                         align_corners=False)
    x = visual.ln_pre(x + torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, d)]))
    blocks = list(visual.transformer.resblocks)
    for block in blocks[:-1]:
        x = block(x)
    last = blocks[-1]
    w_v, b_v = last.attn.in_proj_weight[2 * d:], last.attn.in_proj_bias[2 * d:]
    x = last.attn.out_proj(last.ln_1(x) @ w_v.t() + b_v) + x[:, :1]
    x = x + last.mlp(last.ln_2(x))
    return (visual.ln_post(x[:, 1:]) @ visual.proj).reshape(b, h, w, -1).permute(0, 3, 1, 2)


def _convnext_dense_reference(visual, images):
    """timm's and open_clip's own pooled head on each 1×1 position of the trunk's features."""
    trunk = visual.trunk.forward_features(images)
    return torch.stack([torch.stack([
        visual.head(visual.trunk.forward_head(trunk[:, :, i:i + 1, j:j + 1]).flatten(1))
        for j in range(trunk.shape[-1])], dim=-1) for i in range(trunk.shape[-2])], dim=-2)


def _batch(side: int):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(2):
        image = torch.randint(0, 256, (3, side, side), dtype=torch.uint8, generator=g)
        masks = torch.zeros(3, side, side, dtype=torch.bool)
        masks[0, : side // 2], masks[1, side // 2:, : side // 2], masks[2, side // 2:, side // 2:] = True, True, True
        inst = Instances((side, side))
        inst.gt_masks = BitMasks(masks)
        out.append({"image": image, "image_strong": image, "instances": inst})
    return out


def test_open_clip_builds_the_configured_architecture(paper):
    cfg, model, arch = paper
    visual = model.backbone.visual
    assert model.backbone.output_shape()["clip_dense"].channels == arch["embed_dim"]
    assert model.text_encoder.text_projection.shape[-1] == arch["embed_dim"]
    if "timm_model_name" in arch["vision_cfg"]:  # open_clip's timm tower: its projection head kind
        assert {"linear": "proj", "mlp": "mlp"}[arch["vision_cfg"]["timm_proj"]] in dict(visual.head.named_children())
        assert model.backbone.size_divisibility == 32
    else:
        assert tuple(visual.patch_size) == (arch["vision_cfg"]["patch_size"],) * 2
        assert len(visual.transformer.resblocks) == arch["vision_cfg"]["layers"]


def test_one_training_step_trains_what_the_config_names(paper):
    cfg, model, _ = paper
    model.train()
    optimizer = build_optimizer(cfg, model)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trained = {n for n, p in model.named_parameters() if id(p) in in_optimizer}
    policy = cfg.MODEL.PIXELCLIP.CLIP_FINETUNE  # CLIP_FINETUNE attention: the names holding "attn" or "position"
    visual = [n for n, _ in model.named_parameters() if n.startswith("backbone.clip_model.visual.")]
    expected = {n for n in visual if policy == "full" or "attn" in n or "position" in n}
    assert {n for n in trained if n.startswith("backbone.clip_model.")} == expected  # text tower frozen
    assert "prompts.prompt_tokens" in trained and any(n.startswith("decoder.") for n in trained)
    # one tensor of each trained part: the image encoder's last layer, the prompts, the decoder's first conv
    last = [n for n in visual if ("resblocks" in n and "attn.in_proj_weight" in n) or n.endswith("head.proj.weight")
            or n.endswith("head.mlp.fc2.weight")][-1]
    watched = {n: p for n, p in model.named_parameters() if n in (last, "prompts.prompt_tokens", "decoder.layers.0.weight")}
    before = {n: p.detach().clone() for n, p in watched.items()}
    loss = model(_batch(cfg.MODEL.PIXELCLIP.CLIP_RESOLUTION[0]))["loss_masks"]
    optimizer.zero_grad()
    loss.backward()
    assert torch.isfinite(loss) and all(watched[n].grad is not None and watched[n].grad.abs().sum() > 0 for n in watched)
    optimizer.step()
    assert all(not torch.equal(p.detach(), before[n]) for n, p in watched.items()), last
    model.eval()


def test_dense_path_and_inference_match_independent_computations(paper):
    """Dense features = an independent per-position computation; inference logits = their cosine with
    the text embeddings open_clip's own encode_text gives (synonyms: each normalised, averaged, normalised)."""
    cfg, model, _ = paper
    model.eval().set_vocabulary(VOCABULARY)
    clip_model = model.backbone.clip_model
    reference = _convnext_dense_reference if hasattr(clip_model.visual, "trunk") else _vit_dense_reference
    side = cfg.MODEL.PIXELCLIP.CLIP_RESOLUTION[0]
    image = torch.randint(0, 256, (3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(cfg.MODEL.PIXEL_MEAN).view(3, 1, 1), torch.tensor(cfg.MODEL.PIXEL_STD).view(3, 1, 1)
    with torch.no_grad():
        normalised = ((image.float() - mean) / std)[None]
        dense = reference(clip_model.visual, normalised)
        torch.testing.assert_close(dense_features(clip_model.visual, normalised), dense, atol=2e-4, rtol=2e-4)
        (out,) = model([{"image": image, "height": GRID, "width": GRID}])  # every resize is the identity
        (template,) = model.classifier.templates
        synonyms = [[s.strip() for s in name.split(",")] for name in VOCABULARY]
        texts = [template.format(s) for group in synonyms for s in group]
        emb = F.normalize(clip_model.encode_text(open_clip.get_tokenizer(cfg.MODEL.PIXELCLIP.CLIP_MODEL_NAME)(texts)), dim=-1)
        text = torch.stack([F.normalize(g.mean(0), dim=-1) for g in emb.split([len(g) for g in synonyms])])
        expected = torch.einsum("kc,chw->khw", text, F.normalize(dense[0], dim=0))
    assert out["sem_seg"].shape == (len(VOCABULARY), GRID, GRID)
    torch.testing.assert_close(out["sem_seg"], expected, atol=2e-4, rtol=2e-4)


def test_openai_export_of_the_vits_has_openais_sizes(paper):
    cfg, model, arch = paper
    if "timm_model_name" in arch["vision_cfg"]:
        with pytest.raises(Exception, match="only for ViT"):
            openai_state_dict(model.backbone.clip_model)
        return
    sd = openai_state_dict(model.backbone.clip_model)
    vision, text = arch["vision_cfg"], arch["text_cfg"]
    assert (int(sd["input_resolution"]), int(sd["context_length"]), int(sd["vocab_size"])) == (224, 77, 49408)
    sizes, weights = _openai_build_model_reader(sd)
    assert sizes == {"embed_dim": arch["embed_dim"], "vision_width": vision["width"], "vision_layers": vision["layers"],
                     "vision_patch_size": vision["patch_size"], "image_resolution": vision["image_size"],
                     "context_length": text["context_length"], "vocab_size": text["vocab_size"],
                     "transformer_width": text["width"], "transformer_heads": text["heads"],
                     "transformer_layers": text["layers"]}
    assert set(weights) == set(model.backbone.clip_model.state_dict())
