"""Tiny random-weight SAM and DINO ViT, built from the libraries' own classes (CPU, seconds)."""
from functools import partial

import numpy as np
import torch
from PIL import Image


def tiny_sam(image_size: int = 64, dim: int = 32) -> torch.nn.Module:
    """A SAM from segment-anything's classes: 1-block image encoder, 1-block two-way transformer."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    grid = image_size // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size, patch_size=16, embed_dim=dim, depth=1, num_heads=2, mlp_ratio=2.0,
            out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=False, window_size=0, global_attn_indexes=()),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                     input_image_size=(image_size, image_size), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=16),
    ).eval()


# Thresholds off: a random SAM scores its masks near zero, and the test needs files with masks.
TINY_SAM_GENERATOR = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
                      "box_nms_thresh": 0.9}


def tiny_vit(**overrides) -> torch.nn.Module:
    """A 2-block timm ViT (patch 16, width 48) with random weights, as a DINO stand-in."""
    from pixelclip.masks.dino import build_dino_backbone

    torch.manual_seed(0)
    kwargs = {"depth": 2, "embed_dim": 48, "num_heads": 2}
    kwargs.update(overrides)
    return build_dino_backbone("vit_tiny_patch16_224", "random", **kwargs)


def write_images(folder, names, size=(72, 96), seed=0):
    """Colour-block PNG/JPEG images (several regions, so maskers find structure)."""
    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        h, w = size
        image = np.zeros((h, w, 3), dtype=np.uint8)
        image[:] = rng.integers(0, 255, size=3)
        for _ in range(3):
            y, x = rng.integers(0, h - 16), rng.integers(0, w - 16)
            image[y:y + rng.integers(8, h - y), x:x + rng.integers(8, w - x)] = rng.integers(0, 255, size=3)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths
