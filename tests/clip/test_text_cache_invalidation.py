"""The text-embedding cache (pixelclip/clip/text_cache.py) never serves embeddings of another text tower:
not of a tower with another structure whose state dict holds the same names and weights, and not of the
weights a model had before new ones were loaded or changed."""
import json

import open_clip
import pytest
import torch
from detectron2.modeling import build_model

from pixelclip.clip.build import build_clip_model
from pixelclip.clip import MODEL_CONFIG_DIR
from pixelclip.clip.text import TextEncoder, VocabularyClassifier
from pixelclip.clip.text_cache import text_tower_fingerprint
from tests.clip.test_text_cache import _count_texts
from tests.conftest import make_tiny_cfg

CLASSES = ["sky", "grass, lawn", "dog"]


def _tiny_tower(**text_changes):
    """The PixelCLIP-Tiny-ViT CLIP with some text settings changed, random weights (seed 0)."""
    config = json.loads((MODEL_CONFIG_DIR / "PixelCLIP-Tiny-ViT.json").read_text())
    quick_gelu = text_changes.pop("quick_gelu", False)
    config["text_cfg"].update(text_changes)
    torch.manual_seed(0)
    model = open_clip.model.CLIP(config["embed_dim"], config["vision_cfg"], config["text_cfg"], quick_gelu=quick_gelu)
    return model.float().eval(), open_clip.get_tokenizer("PixelCLIP-Tiny-ViT")


def _classifier(model, tokenizer, cache_dir):
    clf = VocabularyClassifier(TextEncoder(model, tokenizer), ("a photo of a {}.",))
    clf._cache.cache_dir = str(cache_dir) if cache_dir else None
    return clf


@pytest.mark.parametrize("change", [{"heads": 4}, {"quick_gelu": True}, {"no_causal_mask": True}, {"layers": 3}],
                         ids=["heads", "activation", "causal_mask", "layers"])
def test_a_tower_of_another_structure_with_the_same_weights_does_not_share_an_entry(tmp_path, change):
    """Same names, shapes and values for every weight the two towers share (all of them, but for the
    third layer), another structure: other embeddings, so another cache entry."""
    base_model, tokenizer = _tiny_tower()
    other_model, _ = _tiny_tower(**change)
    missing, unexpected = other_model.load_state_dict(base_model.state_dict(), strict=False)
    assert not unexpected and all(".resblocks.2." in k for k in missing)
    base = _classifier(base_model, tokenizer, tmp_path)
    base(CLASSES)
    other = _classifier(other_model, tokenizer, tmp_path)
    encoded = _count_texts(other)
    from_other = other(CLASSES)
    assert sum(encoded) == len(CLASSES) + 1  # "grass, lawn" is two texts: encoded, not read from base's file
    fresh = _classifier(other_model, tokenizer, None)(CLASSES)  # no disk cache
    assert torch.equal(from_other, fresh)
    assert (fresh - base(CLASSES)).abs().max() > 1e-3  # the structures do give other embeddings
    assert text_tower_fingerprint(base.text_encoder) != text_tower_fingerprint(other.text_encoder)


def test_changed_weights_and_clear_give_fresh_embeddings_not_the_old_file(tmp_path):
    """Ask, change a text weight in place (a training step on the tower), clear(), ask again: the
    embeddings of the new weights (as a classifier without cache computes them), not the file written
    for the old ones; and asking once more reads the new file."""
    torch.manual_seed(0)
    model, tokenizer = build_clip_model("PixelCLIP-Tiny-ViT", "")
    clf = _classifier(model, tokenizer, tmp_path)
    old = clf(CLASSES)
    with torch.no_grad():
        model.ln_final.weight.mul_(1.5)
        model.ln_final.bias.add_(0.2)
    clf.clear_cache()
    new = clf(CLASSES)
    fresh = _classifier(model, tokenizer, None)(CLASSES)
    assert torch.equal(new, fresh) and (new - old).abs().max() > 1e-3
    clf.clear_cache()
    encoded = _count_texts(clf)
    assert torch.equal(clf(CLASSES), fresh) and not encoded  # the new weights' own file
    assert len(list(tmp_path.iterdir())) == 2


def test_loading_new_weights_into_the_model_drops_the_old_embeddings(tmp_path):
    """A PixelCLIP model that scored a vocabulary, then loads a checkpoint with other text weights
    (load_state_dict, as D2's checkpointer): its classifier gives the new tower's embeddings."""
    torch.manual_seed(0)
    model = build_model(make_tiny_cfg()).eval()
    model.classifier._cache.cache_dir = str(tmp_path)
    old = model.classifier(CLASSES)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["backbone.clip_model.text_projection"] = state["backbone.clip_model.text_projection"].flip(0)
    model.load_state_dict(state)
    new = model.classifier(CLASSES)
    clip = model.backbone.clip_model
    fresh = _classifier(clip, model.classifier.text_encoder.tokenizer, None)
    fresh.templates = model.classifier.templates
    expected = fresh(CLASSES)
    assert torch.equal(new, expected) and (new - old).abs().max() > 1e-3
