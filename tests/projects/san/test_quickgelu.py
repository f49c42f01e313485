"""pixelclip_san.quickgelu: -quickgelu names for open_clip versions without them (SAN's 2.16)."""
import open_clip

from pixelclip_san.quickgelu import QUICKGELU_BASES, clip_activations, register_quickgelu_configs


def test_versions_that_ship_the_names_are_left_alone():
    before = open_clip.get_model_config("ViT-B-16-quickgelu")  # open_clip >= 2.2x ships it
    assert register_quickgelu_configs(QUICKGELU_BASES) == []
    assert open_clip.get_model_config("ViT-B-16-quickgelu") == before


def test_a_missing_name_is_added_with_quick_gelu():
    # PixelCLIP-Tiny-ViT (registered by pixelclip) has no -quickgelu twin, as ViT-B-16 in open_clip 2.16
    added = register_quickgelu_configs(("PixelCLIP-Tiny-ViT", "No-Such-Architecture"))
    assert added == ["PixelCLIP-Tiny-ViT-quickgelu"]
    base = open_clip.get_model_config("PixelCLIP-Tiny-ViT")
    twin = open_clip.get_model_config("PixelCLIP-Tiny-ViT-quickgelu")
    assert twin == dict(base, quick_gelu=True)
    assert clip_activations(open_clip.create_model("PixelCLIP-Tiny-ViT-quickgelu")) == ["QuickGELU"]
    assert clip_activations(open_clip.create_model("PixelCLIP-Tiny-ViT")) == ["GELU"]
    assert register_quickgelu_configs(("PixelCLIP-Tiny-ViT",)) == []  # once
