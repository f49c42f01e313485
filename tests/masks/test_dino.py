"""DINO k-means masks: deterministic clusters that tile the image; weights from local files only."""
from pathlib import Path

import pytest
import torch

from pixelclip.masks.dino import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DinoKMeansMasker,
    build_dino_backbone,
    kmeans,
    load_dino_state_dict,
)
from tests.masks.tiny_models import tiny_vit


RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "release_data_path.pt"


def test_kmeans_is_the_release_kmeans():
    """fast_pytorch_kmeans.KMeans(k).fit_predict (the release's DINO k-means, 0.2.2 defaults) on seeded
    points, torch's RNG seeded alike: the same labels (tests/fixtures/make_release_data_path.py)."""
    cases = torch.load(RELEASE, map_location="cpu", weights_only=False)["kmeans"]
    for case in cases:
        torch.manual_seed(case["torch_seed"])
        labels = kmeans(case["points"][None], case["k"])
        assert torch.equal(labels[0], case["labels"]), case["k"]
    torch.manual_seed(0)
    two = kmeans(torch.stack([cases[0]["points"], cases[0]["points"]]), cases[0]["k"])
    assert torch.equal(two[0], cases[0]["labels"])  # the batch is clustered image after image, draws in order


def test_kmeans_by_hand():
    """Centres drawn with replacement from torch's RNG, Lloyd steps, the tolerance rule, empty clusters at 0."""
    points = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])[None]
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, 4, (2,), generator=torch.Generator().manual_seed(0))
    labels = kmeans(points, 2, generator=g)
    if start[0] // 2 != start[1] // 2:  # one centre in each pair: the pairs are found
        assert labels[0].tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    # one step only: labels of the first assignment, to the drawn points themselves
    one = kmeans(points, 2, max_iters=1, generator=torch.Generator().manual_seed(0))[0]
    first = torch.cdist(points[0], points[0, start]).argmin(1)
    assert torch.equal(one, first)
    # the same point drawn twice: the second centre gets no point, becomes the zero vector, and then takes
    # the points nearest the origin
    same = torch.tensor([[5.0, 5.0], [5.0, 5.0], [0.0, 0.1], [9.0, 9.0]])[None]
    labels = kmeans(same, 2, generator=_generator_drawing(same.shape[1], [0, 1]))[0]
    assert labels.tolist() == [0, 0, 1, 0]
    assert kmeans(points[:, :2], 5).max() <= 1  # k capped at the number of points


def _generator_drawing(n, wanted):
    """A CPU generator whose next randint(0, n, (len(wanted),)) draws ``wanted``."""
    for seed in range(10000):
        if torch.randint(0, n, (len(wanted),), generator=torch.Generator().manual_seed(seed)).tolist() == wanted:
            return torch.Generator().manual_seed(seed)
    raise AssertionError("no seed draws it")


def test_masker_returns_cluster_masks_that_tile_each_image():
    masker = DinoKMeansMasker(tiny_vit(), num_clusters=4, kmeans_iters=5, input_size=64, seed=0)
    images = torch.rand(2, 3, 50, 70) * 255
    masks = masker(images)
    assert len(masks) == 2
    for m in masks:
        assert m.dtype == torch.bool and m.shape[1:] == (50, 70) and 1 <= len(m) <= 4
        assert torch.all(m.sum(0) == 1)  # every pixel in exactly one cluster
        assert m.flatten(1).any(1).all()
    again = masker(images)
    assert all(torch.equal(a, b) for a, b in zip(masks, again))
    assert not any(p.requires_grad for p in masker.parameters())
    masker.train()
    assert not masker.backbone.training
    assert masker.mask_image(images[0].permute(1, 2, 0).byte().numpy()).shape[1:] == (50, 70)


def test_dino_sees_the_crop_at_its_own_resolution():
    """INPUT_SIZE 0 (the release): a 96×128 crop is 6×8 tokens of the image as it is (a 640² crop: 40×40);
    sides that are not multiples of the patch are cut down to one by a bilinear resize, as the release."""
    masker = DinoKMeansMasker(tiny_vit(), num_clusters=4, seed=0)
    seen = []
    masker.backbone.patch_embed.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    images = torch.rand(1, 3, 96, 128) * 255
    assert masker.patch_features(images).shape[1:3] == (6, 8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(seen[-1], (images - mean) / std)  # no resize
    assert masker.grid_size(640, 640) == (40, 40)
    odd = torch.rand(1, 3, 100, 130) * 255
    assert masker.patch_features(odd).shape[1:3] == (6, 8)
    resized = torch.nn.functional.interpolate((odd - mean) / std, size=(96, 128), mode="bilinear", align_corners=False)
    assert torch.allclose(seen[-1], resized)
    masks = masker(images)[0]
    assert masks.shape[1:] == (96, 128) and torch.all(masks.sum(0) == 1)
    # each mask is a union of whole 16×16 patches (nearest upsampling of the 6×8 cluster map)
    blocks = masks.reshape(len(masks), 6, 16, 8, 16)
    assert torch.equal(blocks.all(dim=(2, 4)), blocks.any(dim=(2, 4)))


def test_input_size_must_fit_the_patch():
    with pytest.raises(ValueError, match="multiple of the patch size 16"):
        DinoKMeansMasker(tiny_vit(), input_size=100)
    with pytest.raises(ValueError, match="smaller than one 16-pixel patch"):
        DinoKMeansMasker(tiny_vit()).patch_features(torch.zeros(1, 3, 10, 40))


def test_weights_load_from_timm_and_original_dino_layouts(tmp_path):
    source = tiny_vit()
    timm_file = tmp_path / "timm.pth"
    torch.save(source.state_dict(), timm_file)
    loaded = build_dino_backbone("vit_tiny_patch16_224", str(timm_file), depth=2, embed_dim=48, num_heads=2)
    assert torch.equal(loaded.pos_embed, source.pos_embed)

    # The original DINO training checkpoint: {"teacher": {"module.backbone.*", "module.head.*"}}.
    dino = {"teacher": {f"module.backbone.{k}": v for k, v in source.state_dict().items()}}
    dino["teacher"]["module.head.mlp.0.weight"] = torch.zeros(3, 3)
    dino_file = tmp_path / "dino_checkpoint.pth"
    torch.save(dino, dino_file)
    assert set(load_dino_state_dict(str(dino_file))) == set(source.state_dict())
    loaded = build_dino_backbone("vit_tiny_patch16_224", str(dino_file), depth=2, embed_dim=48, num_heads=2)
    assert torch.equal(loaded.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)

    from safetensors.torch import save_file

    st_file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(st_file))
    build_dino_backbone("vit_tiny_patch16_224", str(st_file), depth=2, embed_dim=48, num_heads=2)


def test_position_embedding_is_resampled_from_another_grid(tmp_path):
    source = tiny_vit(img_size=128)  # 8×8 grid
    path = tmp_path / "w128.pth"
    torch.save(source.state_dict(), path)
    loaded = build_dino_backbone("vit_tiny_patch16_224", str(path), depth=2, embed_dim=48, num_heads=2)
    assert loaded.pos_embed.shape == (1, 1 + 14 * 14, 48)


def test_bad_weights_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"DINO weights file '.*missing\.pth' not found"):
        build_dino_backbone("vit_small_patch16_224", str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth' cannot be read"):
        build_dino_backbone("vit_small_patch16_224", str(junk))
    other = tmp_path / "other.pth"
    torch.save(tiny_vit().state_dict(), other)
    with pytest.raises(ValueError, match="does not match timm's vit_small_patch16_224"):
        build_dino_backbone("vit_small_patch16_224", str(other), depth=2)


def test_build_from_config_reads_model_dino(tmp_path):
    from tests.conftest import make_tiny_cfg

    from pixelclip.masks.dino import build_dino_masker

    path = tmp_path / "w.pth"
    torch.save(tiny_vit().state_dict(), path)
    cfg = make_tiny_cfg(**{"MODEL.DINO.ENABLED": True, "MODEL.DINO.MODEL_NAME": "vit_tiny_patch16_224",
                           "MODEL.DINO.WEIGHTS": str(path), "MODEL.DINO.NUM_CLUSTERS": 3,
                           "MODEL.DINO.INPUT_SIZE": 32, "INPUT.FORMAT": "BGR"})
    with pytest.raises(ValueError, match="does not match"):  # default depth 12 vs the 2-block file
        build_dino_masker(cfg)
    cfg.MODEL.DINO.WEIGHTS = "random"
    masker = build_dino_masker(cfg)
    assert masker.num_clusters == 3 and masker.input_size == 32 and masker.flip_channels
    images = torch.rand(1, 3, 40, 40) * 255
    assert masker.kmeans_iters == 100 and masker.kmeans_tol == 1e-4 and masker.seed is None  # the release's
    rgb = DinoKMeansMasker(masker.backbone, num_clusters=3, input_size=32)
    torch.manual_seed(0)
    bgr_masks = masker(images)
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(bgr_masks, rgb(images.flip(1))))
    cfg.MODEL.DINO.WEIGHTS = ""
    with pytest.raises(ValueError, match="MODEL.DINO.WEIGHTS"):
        build_dino_masker(cfg)


def test_kmeans_stops_on_the_squared_shift_of_the_centres_by_hand():
    """1-D points 0, 1, 5, 6, 7 (y = 0), centres drawn at 0 and 1. Step 1: labels 0 1 1 1 1, new centres
    0 and 19/4 (squared shift (4.75 - 1)² = 14.0625, exact in float32). Step 2: labels 0 0 1 1 1, centres
    0.5 and 6 (shift 0.25 + 1.5625). Step 3 changes nothing (shift 0)."""
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [6.0, 0.0], [7.0, 0.0]])[None]

    def run(**kwargs):
        return kmeans(points, 2, generator=_generator_drawing(5, [0, 1]), **kwargs)[0].tolist()

    assert run() == [0, 0, 1, 1, 1]
    assert run(max_iters=1) == [0, 1, 1, 1, 1]
    assert run(max_iters=2) == [0, 0, 1, 1, 1]
    assert run(tol=14.0625) == [0, 1, 1, 1, 1]  # a shift equal to tol stops
    assert run(tol=14.0) == [0, 0, 1, 1, 1]
    assert run(tol=1.8) == [0, 0, 1, 1, 1]


def test_defaults_are_the_release_and_dino_normalisation():
    """16 clusters (METHOD.md), k-means 100 steps / tol 1e-4 (fast_pytorch_kmeans), the image as it is,
    and ImageNet's mean and std (timm's constants, × 255) that DINO was trained with."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    masker = DinoKMeansMasker(tiny_vit())
    assert (masker.num_clusters, masker.kmeans_iters, masker.kmeans_tol) == (16, 100, 1e-4)
    assert masker.input_size == 0 and masker.seed is None and not masker.flip_channels
    # float32 buffers: one rounding of each value (relative 6e-8)
    assert torch.allclose(masker.pixel_mean.flatten(), torch.tensor(IMAGENET_DEFAULT_MEAN) * 255, rtol=1e-6, atol=0)
    assert torch.allclose(masker.pixel_std.flatten(), torch.tensor(IMAGENET_DEFAULT_STD) * 255, rtol=1e-6, atol=0)


def test_mask_image_feeds_dino_the_rgb_image():
    masker = DinoKMeansMasker(tiny_vit(), num_clusters=2, seed=0)
    seen = []
    masker.backbone.patch_embed.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    image = (torch.rand(32, 48, 3, generator=torch.Generator().manual_seed(1)) * 255).byte()
    masker.mask_image(image.numpy())
    rgb = image.permute(2, 0, 1)[None].float()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    assert torch.allclose(seen[-1], (rgb - mean) / std, rtol=1e-5, atol=1e-5)


def test_cluster_maps_are_nearest_upsampled_and_empty_clusters_dropped(monkeypatch):
    """k-means replaced by fixed labels on the 2×3 grid of a 45×59 image (k = 4, cluster 1 empty):
    3 masks, clusters 0, 2, 3 in order; pixel (i, j) takes the label of token (⌊2i/45⌋, ⌊3j/59⌋),
    PyTorch's "nearest" (no pixel lies on a token boundary at these sizes)."""
    import pixelclip.masks.dino as dino

    grid = torch.tensor([[0, 2, 2], [0, 0, 3]])

    def fixed(x, k, *args, **kwargs):
        assert x.shape[:2] == (1, 6) and k == 4
        return grid.reshape(1, 6)

    monkeypatch.setattr(dino, "kmeans", fixed)
    masks = DinoKMeansMasker(tiny_vit(), num_clusters=4)(torch.rand(1, 3, 45, 59) * 255)[0]
    i, j = torch.arange(45)[:, None], torch.arange(59)[None]
    labels = grid[(2 * i) // 45, (3 * j) // 59]
    assert masks.shape == (3, 45, 59)
    assert torch.equal(masks, torch.stack([labels == c for c in (0, 2, 3)]))


def test_weights_of_another_width_are_a_clear_error(tmp_path):
    """Same keys, other shapes: one ValueError naming the first mismatches (not load_state_dict's RuntimeError)."""
    wide = tmp_path / "wide.pth"
    torch.save(tiny_vit(embed_dim=64).state_dict(), wide)
    with pytest.raises(ValueError, match=r"missing keys \[\], unexpected keys \[\], shape mismatches "
                                         r"\[cls_token \(1, 1, 64\) vs \(1, 1, 48\)"):
        build_dino_backbone("vit_tiny_patch16_224", str(wide), depth=2, embed_dim=48, num_heads=2)


def test_patch_tokens_follow_every_prefix_token():
    """A ViT with register tokens (e.g. DINOv2-reg) puts 1 + R tokens before the patches; the grid is what follows."""
    backbone = tiny_vit(reg_tokens=2)
    images = torch.rand(1, 3, 32, 48) * 255
    feats = DinoKMeansMasker(backbone).patch_features(images)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    tokens = backbone.forward_features((images - mean) / std)
    assert tokens.shape[1] == 3 + 6 and torch.equal(feats, tokens[:, 3:].reshape(1, 2, 3, -1))
