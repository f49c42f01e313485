"""DINO k-means masks: deterministic clusters that tile the image; weights from local files only."""
import pytest
import torch

from pixelclip.masks.dino import DinoKMeansMasker, build_dino_backbone, kmeans, load_dino_state_dict
from tests.masks.tiny_models import tiny_vit


def test_kmeans_separates_blobs_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = (centres.repeat_interleave(20, 0) + 0.1 * torch.randn(60, 2, generator=g))[None]
    labels = kmeans(points, 3, iters=20, seed=0)
    assert labels.shape == (1, 60)
    groups = labels[0].view(3, 20)
    assert all(len(set(row.tolist())) == 1 for row in groups) and len(set(groups[:, 0].tolist())) == 3
    assert torch.equal(labels, kmeans(points, 3, iters=20, seed=0))
    assert kmeans(points[:, :2], 5).max() <= 1  # k capped at the number of points


def test_masker_returns_cluster_masks_that_tile_each_image():
    masker = DinoKMeansMasker(tiny_vit(), num_clusters=4, kmeans_iters=5, input_size=64)
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


def test_input_size_must_fit_the_patch():
    with pytest.raises(ValueError, match="multiple of the patch size 16"):
        DinoKMeansMasker(tiny_vit(), input_size=100)


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
    rgb = DinoKMeansMasker(masker.backbone, num_clusters=3, input_size=32)
    assert all(torch.equal(a, b) for a, b in zip(masker(images), rgb(images.flip(1))))
    cfg.MODEL.DINO.WEIGHTS = ""
    with pytest.raises(ValueError, match="MODEL.DINO.WEIGHTS"):
        build_dino_masker(cfg)
