"""pixelclip.clip.weights: CLIP weights found from the file system alone; missing ones said at once."""
import open_clip.factory
import open_clip.pretrained
import pytest

import pixelclip.clip.weights as weights
from pixelclip.clip.build import build_clip_model
from pixelclip.clip.weights import ClipWeightsError, locate_clip_weights


@pytest.fixture
def no_download(monkeypatch):
    """Any download attempt fails the test."""
    def fail(*args, **kwargs):
        raise AssertionError("a download was attempted")

    for module in (open_clip.pretrained, open_clip.factory):
        for name in ("download_pretrained", "download_pretrained_from_hf", "download_pretrained_from_url"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, fail)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", fail)


def test_missing_weights_with_the_network_down_are_reported_without_a_download(tmp_path, monkeypatch, no_download):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    probed = []
    monkeypatch.setattr(weights, "network_reachable", lambda host, *a, **k: probed.append(host) or False)
    with pytest.raises(ClipWeightsError) as err:
        build_clip_model("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path / "empty_cache"))
    message = str(err.value)
    assert probed == ["huggingface.co"]  # one connection attempt, no retries
    assert ("CLIP weights 'ViT-B-16-quickgelu' / 'openai' are not in the local cache and cannot be downloaded "
            "from the Hugging Face Hub repository timm/vit_base_patch16_clip_224.openai (huggingface.co cannot "
            "be reached) — ") in message
    assert "set MODEL.PIXELCLIP.CLIP_PRETRAINED to its local path" in message and "\n" not in message


def test_offline_mode_does_not_even_probe(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(weights, "network_reachable", lambda *a, **k: pytest.fail("probed the network"))
    with pytest.raises(ClipWeightsError, match=r"\(HF_HUB_OFFLINE is set\)"):
        locate_clip_weights("convnext_base_w_320", "laion_aesthetic_s13b_b82k", cache_dir=str(tmp_path))


def _hub_snapshot(cache):
    """The snapshot folder of ViT-B-16 openai's hub repository in ``cache``, laid out as huggingface_hub
    writes it: models--org--name/{refs/main, snapshots/<rev>/}."""
    repo = cache / "models--timm--vit_base_patch16_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    return snapshot


def test_weights_in_the_hub_cache_are_found_without_the_network(tmp_path, monkeypatch, no_download):
    """A cache laid out as huggingface_hub writes it: models--org--name/{refs/main, snapshots/<rev>/file}."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _hub_snapshot(tmp_path)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"weights")
    found = locate_clip_weights("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))
    assert found.source == "cache" and found.path == str(snapshot / "open_clip_pytorch_model.bin")


def test_a_local_file_and_random_weights_need_no_cache(tmp_path):
    (tmp_path / "clip.pt").write_bytes(b"x")
    assert locate_clip_weights("PixelCLIP-Tiny-ViT", str(tmp_path / "clip.pt")).source == "file"
    assert locate_clip_weights("PixelCLIP-Tiny-ViT", "").source == "random"
    with pytest.raises(ClipWeightsError, match="CLIP checkpoint file not found: .*missing.pt"):
        locate_clip_weights("PixelCLIP-Tiny-ViT", str(tmp_path / "missing.pt"))


def test_the_safetensors_file_open_clip_prefers_is_found_in_the_hub_cache(tmp_path, monkeypatch, no_download):
    """open_clip's ``download_pretrained_from_hf`` asks for ``open_clip_model.safetensors`` before
    ``open_clip_pytorch_model.bin``: a cache holding only the safetensors file (or both) is a cache hit on it."""
    from open_clip.pretrained import _get_safe_alternatives

    assert "open_clip_model.safetensors" in list(_get_safe_alternatives("open_clip_pytorch_model.bin"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _hub_snapshot(tmp_path)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    found = locate_clip_weights("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))
    assert found.source == "cache" and found.path == str(snapshot / "open_clip_model.safetensors")
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"weights")
    assert locate_clip_weights("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path)).path == \
        str(snapshot / "open_clip_model.safetensors")
