"""Text encoder, vocabulary classifier (templates, synonyms, cache) and learnable prompts."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixelclip.clip.build import build_clip_model
from pixelclip.clip.text import LearnablePrompts, TextEncoder, VocabularyClassifier, get_templates


def _encoder():
    torch.manual_seed(0)
    model, tokenizer = build_clip_model("PixelCLIP-Tiny-ViT", "")
    return model, TextEncoder(model, tokenizer)


def test_text_encoder_equals_open_clip():
    model, enc = _encoder()
    tokens = enc.tokenize(["a photo of a dog.", "sky"])
    assert torch.allclose(enc(tokens), model.encode_text(tokens), atol=1e-6)
    assert not any(p.requires_grad for p in enc.parameters())


def test_vocabulary_synonyms_templates_and_cache():
    model, enc = _encoder()
    templates = get_templates("imagenet_select")
    clf = VocabularyClassifier(enc, templates)
    emb = clf(["dog, puppy", "sky"])
    assert emb.shape == (2, 32) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)

    def embed(word):  # T×C, one unit vector per template
        return F.normalize(model.encode_text(enc.tokenize([t.format(word) for t in templates])), dim=-1)

    # the release's order: per template average the synonyms and renormalise, then average the templates
    per_template = F.normalize(embed("dog") + embed("puppy"), dim=-1)
    expected_dog = F.normalize(per_template.mean(0), dim=-1)
    assert torch.allclose(emb[0], expected_dog, atol=1e-5)
    # ... which is not the other order (templates first, then synonyms), by far more than the tolerance
    other = F.normalize(F.normalize(embed("dog").mean(0), dim=-1) + F.normalize(embed("puppy").mean(0), dim=-1), dim=-1)
    assert (emb[0] - other).abs().max() > 1e-3
    assert torch.allclose(emb[1], F.normalize(embed("sky").mean(0), dim=-1), atol=1e-5)
    assert clf(["dog, puppy", "sky"]) is emb  # cached: not recomputed
    assert clf(["sky"]) is not emb and len(clf._cache) == 2
    clf.load_state_dict(clf.state_dict())
    assert len(clf._cache) == 0  # a weight load invalidates the cache


def test_template_ensembles():
    # the release's single template has no final period; its imagenet_select is these 8, in this order
    assert get_templates("single") == ("A photo of a {} in the scene",)
    assert get_templates("imagenet_select") == (
        "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video game.",
        "art of the {}.", "a photo of the small {}.", "A photo of a {} in the scene")
    assert len(get_templates("imagenet")) == 80
    assert len(get_templates("scene14")) == 14 and all("{}" in t for t in get_templates("scene14"))
    with pytest.raises(ValueError, match="scene14"):
        get_templates("imagenet-select")


def test_prompts_without_training_equal_plain_text_and_get_gradients():
    model, enc = _encoder()
    prompts = LearnablePrompts(enc, num_prompts=3, prompt_length=4, template="A photo of a {} in the scene")
    assert prompts.prompt_tokens.shape == (3, 4, 32)
    # setting the slots to the embedding of "x" reproduces the plain encoding of the template
    x_embed = enc.token_embedding(enc.tokenize(["x"]))[0, 1]
    with torch.no_grad():
        prompts.prompt_tokens.copy_(x_embed.expand(3, 4, -1))
    plain = model.encode_text(enc.tokenize(["A photo of a x x x x in the scene"]))
    out = prompts()
    assert torch.allclose(out, plain.expand(3, -1), atol=1e-5)
    out.sum().backward()
    assert prompts.prompt_tokens.grad is not None and prompts.prompt_tokens.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


def test_prompt_initialisation_is_seeded():
    _, enc = _encoder()
    a = LearnablePrompts(enc, 4, 4, init_seed=1).prompt_tokens
    b = LearnablePrompts(enc, 4, 4, init_seed=1).prompt_tokens
    c = LearnablePrompts(enc, 4, 4, init_seed=2).prompt_tokens
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_prompt_initialisation_from_a_word_list():
    _, enc = _encoder()
    words = ["grass", "water", "photo"]
    prompts = LearnablePrompts(enc, 16, 4, init_seed=0, init_words=words).prompt_tokens
    allowed = torch.cat([LearnablePrompts._word_tokens(enc, w) for w in words])
    table = enc.token_embedding.weight.detach()
    for slot in prompts.reshape(-1, prompts.shape[-1]):
        assert any(torch.equal(slot, table[i]) for i in allowed)
    with pytest.raises(ValueError, match="PROMPT_INIT_WORDS"):
        LearnablePrompts(enc, 2, 4, init_words=["  "])


def test_truncated_context_equals_full_context_in_float64():
    # CLIP's text attention is causal: the EOT token's output cannot depend on the padding after it.
    _, enc = _encoder()
    enc.double()
    prompts = LearnablePrompts(enc, num_prompts=5, prompt_length=4, template="A photo of a {} in the scene").double()
    assert enc.causal
    lengths = []
    # the blocks are batch-first in open_clip 3.x: N×L×D
    hook = enc.transformer.resblocks[0].register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
    results = {}
    for truncate in (True, False):
        enc.truncate_context = truncate
        prompts.prompt_tokens.grad = None
        out = prompts()
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        texts = enc(enc.tokenize(["a photo of a dog.", "sky", "a photo of the large grass in the scene."]))
        results[truncate] = (out.detach(), prompts.prompt_tokens.grad.clone(), texts)
    hook.remove()
    eot = int(prompts.tokens.argmax())
    assert lengths == [eot + 1, 12, enc.context_length, enc.context_length]  # "a photo of the large ..." has 12
    for fast, full in zip(results[True], results[False]):
        assert torch.allclose(fast, full, rtol=1e-12, atol=1e-14)


class _SequenceFirstTransformer(nn.Module):
    """open_clip < 2.26's Transformer: no ``batch_first`` attribute; blocks and ``forward`` take L×N×D."""

    def __init__(self, resblocks: nn.ModuleList):
        super().__init__()
        self.resblocks = resblocks

    def forward(self, x, attn_mask=None):
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x


def _sequence_first_blocks(transformer) -> nn.ModuleList:
    blocks = copy.deepcopy(transformer.resblocks)
    for block in blocks:
        block.attn.batch_first = False  # nn.MultiheadAttention's default, as in open_clip < 2.26
    return blocks


def _sequence_first_encode_text(model, tokens):
    """The text path of open_clip < 2.26, which FC-CLIP's own ``CLIP.encode_text`` copies: permute N×L×D to
    L×N×D around the transformer, EOT (arg-max id) pooling, then the projection."""
    x = model.token_embedding(tokens) + model.positional_embedding
    x = model.transformer(x.permute(1, 0, 2), attn_mask=model.attn_mask).permute(1, 0, 2)
    x = model.ln_final(x)
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection


def test_text_encoder_follows_both_open_clip_layouts():
    model, enc = _encoder()
    tokens = enc.tokenize(["a photo of a dog.", "sky", "a b c d e f"])
    expected = model.encode_text(tokens)  # open_clip 3.3.0, batch-first
    # open_clip 2.26 to 3.x built with batch_first=False: forward still takes N×L×D, the blocks L×N×D
    flipped = copy.deepcopy(model)
    flipped.transformer.batch_first = False
    flipped.transformer.resblocks = _sequence_first_blocks(model.transformer)
    torch.testing.assert_close(flipped.encode_text(tokens), expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(TextEncoder(flipped, enc.tokenizer)(tokens), expected, atol=1e-6, rtol=1e-6)
    # open_clip < 2.26 (what FC-CLIP's code was written for): no batch_first attribute, L×N×D throughout
    legacy = copy.deepcopy(model)
    legacy.transformer = _SequenceFirstTransformer(_sequence_first_blocks(model.transformer))
    assert not hasattr(legacy.transformer, "batch_first")
    reference = _sequence_first_encode_text(legacy, tokens)
    torch.testing.assert_close(reference, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(TextEncoder(legacy, enc.tokenizer)(tokens), reference, atol=1e-6, rtol=1e-6)
    with pytest.raises(RuntimeError):  # the layouts really differ: batch-first input breaks the legacy stack
        legacy.transformer(model.token_embedding(tokens) + model.positional_embedding, attn_mask=model.attn_mask)


def test_the_prompt_forward_reads_nothing_back_from_the_device():
    # on CUDA, int() / .item() / bool() / .tolist() / .cpu() of a device tensor wait for the GPU: once per training
    # step in the prompt path. Every tensor method called during a forward is recorded (torch function mode).
    from torch.overrides import TorchFunctionMode

    readbacks = {"__int__", "__index__", "__float__", "__bool__", "item", "tolist", "cpu", "numpy"}

    class Record(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    _, enc = _encoder()
    prompts = LearnablePrompts(enc, num_prompts=3, prompt_length=4)
    reference = prompts()  # the same forward with the context found from the ids
    with Record() as record:
        out = prompts()
    assert record.names and not readbacks & set(record.names)
    assert prompts.context == int(prompts.tokens.argmax()) + 1 and torch.equal(out, reference)
    enc.truncate_context = False  # the full context needs no ids either
    with Record() as record:
        prompts()
    assert not readbacks & set(record.names)


@pytest.mark.parametrize("pool_type", ["argmax", "eos", "last", "first"])
def test_every_text_pool_type_equals_open_clips_encode_text(pool_type):
    """open_clip's ``text_global_pool`` is the reference for each pooling. For ``eos`` the end token is a word
    id of the prompt, not CLIP's EOT (the largest id): pooling by argmax would read another position."""
    torch.manual_seed(0)
    model, tokenizer = build_clip_model("PixelCLIP-Tiny-ViT", "")
    tokens = tokenizer(["a photo of a dog", "a dog on the grass in the sun"], context_length=model.context_length)
    model.text_pool_type = pool_type
    model.text_eos_id = int(tokens[0, 1])  # the word "a": position 1 in both prompts, far from their EOT
    enc = TextEncoder(model, tokenizer)
    assert enc.pool_type == pool_type
    assert (tokens == model.text_eos_id).any(dim=1).all()  # each prompt holds the chosen end token
    with torch.no_grad():
        torch.testing.assert_close(enc(tokens), model.encode_text(tokens), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_vocabulary_encoded_in_batches_is_every_text_once(batch_size):
    """2 classes × 8 templates = 16 texts in batches of ``batch_size`` (the last one partial): each class is
    the renormalised mean of its 8 unit text embeddings, computed here with open_clip's ``encode_text``."""
    model, enc = _encoder()
    templates = get_templates("imagenet_select")
    clf = VocabularyClassifier(enc, templates, batch_size=batch_size)
    emb = clf(["dog", "sky"])
    for row, word in zip(emb, ["dog", "sky"]):
        with torch.no_grad():
            texts = F.normalize(model.encode_text(enc.tokenize([t.format(word) for t in templates])), dim=-1)
        torch.testing.assert_close(row, F.normalize(texts.mean(0), dim=-1), atol=1e-5, rtol=1e-5)
