"""The disk cache of vocabulary text embeddings (pixelclip/clip/text_cache.py) and encoding progress."""
import logging
import os

import pytest
import torch

from pixelclip.clip.build import build_clip_model
from pixelclip.clip.text import TextEncoder, VocabularyClassifier, get_templates

CLASSES = [f"class {i}" for i in range(7)] + ["sofa, couch"]


def _classifier(cache_dir, seed=0, templates="imagenet_select", batch_size=256):
    torch.manual_seed(seed)
    model, tokenizer = build_clip_model("PixelCLIP-Tiny-ViT", "")
    clf = VocabularyClassifier(TextEncoder(model, tokenizer), get_templates(templates), batch_size=batch_size)
    clf._cache.cache_dir = str(cache_dir) if cache_dir else None
    return clf


def _count_texts(clf):
    seen = []
    forward = clf.text_encoder.forward
    clf.text_encoder.forward = lambda tokens: seen.append(len(tokens)) or forward(tokens)
    return seen


def test_a_second_run_reads_the_embeddings_instead_of_encoding(tmp_path, caplog):
    first = _classifier(tmp_path)
    encoded = _count_texts(first)
    logger = logging.getLogger("pixelclip.clip")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    first.batch_size = 30  # 9 texts × the release's 8 imagenet_select templates = 72 texts in 3 batches
    try:
        emb = first(CLASSES)
    finally:
        logger.removeHandler(caplog.handler)
    assert sum(encoded) == 9 * 8
    assert "Encoding 72 texts on cpu in 3 batches" in caplog.text
    assert "Encoded 30 / 72 texts" in caplog.text and "Encoded 72 / 72 texts" in caplog.text
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".pt")

    second = _classifier(tmp_path)  # a new model with the same weights, as the next run builds
    second.text_encoder.forward = lambda tokens: pytest.fail("encoded again")
    assert torch.equal(second(CLASSES), emb)
    uncached = _classifier(None)
    assert torch.equal(uncached(CLASSES), emb)


def test_the_key_holds_the_weights_content_and_the_templates(tmp_path):
    base = _classifier(tmp_path)
    base(CLASSES)
    other_weights = _classifier(tmp_path, seed=1)  # same architecture and name, other weights
    encoded = _count_texts(other_weights)
    other_weights(CLASSES)
    assert sum(encoded) == 9 * 8
    other_templates = _classifier(tmp_path, templates="single")
    encoded = _count_texts(other_templates)
    other_templates(CLASSES)
    assert sum(encoded) == 9
    fine_tuned = _classifier(tmp_path)
    with torch.no_grad():
        fine_tuned.text_encoder.ln_final.bias.add_(0.1)
    fine_tuned.clear_cache()
    encoded = _count_texts(fine_tuned)
    fine_tuned(CLASSES)
    assert sum(encoded) == 9 * 8
    assert len(os.listdir(tmp_path)) == 4


def test_an_unreadable_cache_file_is_ignored_and_rewritten(tmp_path):
    first = _classifier(tmp_path)
    emb = first(CLASSES)
    (path,) = [tmp_path / f for f in os.listdir(tmp_path)]
    path.write_bytes(b"truncated")
    again = _classifier(tmp_path)
    encoded = _count_texts(again)
    assert torch.equal(again(CLASSES), emb) and sum(encoded) == 9 * 8
    assert torch.load(path, weights_only=True)["embeddings"].shape == (8, 32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_vocabulary_first_encoded_inside_autocast_is_cached_in_float32(tmp_path, dtype):
    # an evaluation (or the training step's diagnostics) under autocast encodes first; fp32 evaluation then reads
    # the memory and disk caches: it must get exactly what a fresh float32 encoding gives
    clf = _classifier(tmp_path)
    with torch.autocast("cpu", dtype=dtype):
        inside = clf(CLASSES)
    outside = clf(CLASSES)  # from memory
    from_disk = _classifier(tmp_path)(CLASSES)
    fresh = _classifier(None)(CLASSES)  # no cache at all, no autocast
    assert len(os.listdir(tmp_path)) == 1
    for emb in (inside, outside, from_disk):
        assert emb.dtype == torch.float32 and torch.equal(emb, fresh)
    # the encoder itself under this autocast does compute in lower precision: the check above is not vacuous
    with torch.autocast("cpu", dtype=dtype):
        low = clf.text_encoder(clf.text_encoder.tokenize(["a photo of a class 1."]))
    assert low.dtype == dtype


def test_the_file_key_leaves_the_device_out(tmp_path):
    """A cached file is keyed by the class names and templates only: the device of the classifier's key is
    not in it, so a run on another device reads the same file."""
    clf = _classifier(tmp_path, templates="single")
    clf(["sky", "sofa, couch"])
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    stored = torch.load(files[0], map_location="cpu", weights_only=True)
    assert stored["key"] == [["sky", "sofa, couch"], list(get_templates("single"))]


def test_a_file_that_belongs_to_another_vocabulary_is_not_used(tmp_path):
    """A file stores its own key: one found under another vocabulary's name (a hash collision, a copied
    file) is ignored, and that vocabulary is encoded."""
    clf = _classifier(tmp_path, templates="single")
    sky = clf(["sky"])
    (written,) = tmp_path.glob("*.pt")
    other = _classifier(tmp_path, templates="single")
    target = other._cache.path_for((("grass",), other.templates, "cpu"))
    os.replace(written, target)
    encoded = _count_texts(other)
    grass = other(["grass"])
    assert sum(encoded) == 1 and not torch.equal(grass, sky)
    assert torch.equal(grass, _classifier(None, templates="single")(["grass"]))
