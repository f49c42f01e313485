"""The text side: CLIP's frozen text encoder, vocabulary classifiers and learnable class prompts."""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES
from torch import nn

from ..utils.modules import hold_reference
from .build import blocks_batch_first, freeze
from .text_cache import TextEmbeddingCache

logger = logging.getLogger(__name__)

# The release's single template (no final period): also the prompt template its training uses.
SINGLE_TEMPLATE = "A photo of a {} in the scene"
# The release's "imagenet_select" ensemble, in its order: its evaluation script uses it for every benchmark.
IMAGENET_SELECT_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
    "A photo of a {} in the scene",
)
# This project's earlier 14-template scene-parsing ensemble (shares 6 templates with the release's).
SCENE14_TEMPLATES = (
    "a bad photo of the {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "itap of a {}.",
    "art of the {}.",
    "a origami {}.",
    "this is a photo of a {}.",
    "this is a photo of a small {}.",
    "this is a photo of a large {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)
TEMPLATE_SETS = ("single", "imagenet_select", "scene14", "imagenet")


def get_templates(name: str) -> Tuple[str, ...]:
    """Template ensemble by name: ``single`` and ``imagenet_select`` (the release's), ``scene14``, or
    ``imagenet`` (OpenAI's 80)."""
    if name == "single":
        return (SINGLE_TEMPLATE,)
    if name == "imagenet_select":
        return IMAGENET_SELECT_TEMPLATES
    if name == "scene14":
        return SCENE14_TEMPLATES
    if name == "imagenet":
        return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)
    raise ValueError(f"unknown template ensemble '{name}' (MODEL.PIXELCLIP.TEST.TEMPLATES): {'|'.join(TEMPLATE_SETS)}")


class TextEncoder(nn.Module):
    """CLIP's text transformer driven from token embeddings, so learnable slots can be injected.

    Holds (shares) the text modules of an open_clip ``CLIP``; all of them are frozen. The models that
    use it keep it as a plain reference (:func:`~pixelclip.utils.modules.hold_reference`): the CLIP model
    is registered once, by the backbone, so its text tower appears once in the state dict.
    """

    def __init__(self, clip_model: nn.Module, tokenizer):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        hold_reference(self, "_clip_model", clip_model)  # its causal mask buffer follows the owner's .to()
        self.pool_type = getattr(clip_model, "text_pool_type", "argmax")
        self.eos_token_id = getattr(clip_model, "text_eos_id", None)
        self.tokenizer = tokenizer
        self.context_length = int(clip_model.positional_embedding.shape[0])
        mask = self.attn_mask
        if mask is not None:
            above = torch.ones_like(mask, dtype=torch.bool).triu(1)
            self.causal = bool((mask[above] == float("-inf")).all() and (mask[~above] == 0).all())
        else:
            self.causal = False
        # Run the transformer on the context up to the last pooled (EOT) token only: exact for a causal
        # text encoder (False: always the full context, the reference computation).
        self.truncate_context = True
        freeze(self)

    @property
    def device(self) -> torch.device:
        return self.token_embedding.weight.device

    @property
    def attn_mask(self):
        """The CLIP model's causal L×L mask buffer (None for a non-causal text tower)."""
        return getattr(self._clip_model, "attn_mask", None)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """N texts -> N×L token ids on this module's device."""
        return self.tokenizer(list(texts), context_length=self.context_length).to(self.device)

    def _pool_index(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "argmax":  # EOT has the largest id in CLIP's vocabulary
            return tokens.argmax(dim=-1)
        if self.pool_type == "eos":
            return (tokens == self.eos_token_id).int().argmax(dim=-1)
        if self.pool_type == "last":
            return torch.full_like(tokens[:, 0], tokens.shape[1] - 1)
        return torch.zeros_like(tokens[:, 0])  # "first"

    def used_context(self, tokens: torch.Tensor) -> int:
        """Leading positions the transformer must run for ``tokens`` N×L: ``last pooled token + 1`` for a
        causal encoder that pools EOT (with ``truncate_context``), else L. Reads the ids (a host sync on
        CUDA): callers with fixed tokens compute it once."""
        if self.truncate_context and self.causal and self.pool_type in ("argmax", "eos"):
            return int(self._pool_index(tokens).max()) + 1
        return int(tokens.shape[1])

    def encode_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor,
                          context: Optional[int] = None) -> torch.Tensor:
        """Token embeddings N×L×D (their ids N×L tell where EOT is) -> text features N×C.

        With a causal attention mask a token sees only the tokens before it, so the pooled EOT token's
        output does not depend on the padding after the last EOT: the transformer runs on the first
        ``last EOT + 1`` positions only (CLIP's prompts use 10–20 of its 77; forward and backward cost
        scale with the length). Same result up to float rounding. ``context``: that length when the
        caller knows it (:meth:`used_context`, computed once for fixed tokens: no host sync per call)."""
        pool = self._pool_index(tokens)
        length = self.used_context(tokens) if context is None else int(context)
        x = embeddings[:, :length] + self.positional_embedding[:length].to(embeddings.dtype)
        attn_mask = None if self.attn_mask is None else self.attn_mask[:length, :length].to(x.device)
        # the blocks run here, in their own layout (open_clip < 2.26 is sequence-first, later batch-first)
        sequence_first = not blocks_batch_first(self.transformer)
        if sequence_first:
            x = x.transpose(0, 1)
        for block in self.transformer.resblocks:
            x = block(x, attn_mask=attn_mask)
        if sequence_first:
            x = x.transpose(0, 1)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), pool]
        if self.text_projection is None:
            return x
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids N×L -> text features N×C (equal to open_clip's ``encode_text``)."""
        return self.encode_embeddings(self.token_embedding(tokens), tokens)


class VocabularyClassifier(nn.Module):
    """Unit-norm text embeddings of a vocabulary, cached per (vocabulary, templates, device), in
    memory and on disk (keyed by the text weights' content too; ``text_cache.py``).

    A class name ``"a, b"`` lists synonyms. As the release: per template, each synonym's embedding is
    normalised, they are averaged and renormalised; then the templates are averaged and renormalised.
    """

    def __init__(self, text_encoder: TextEncoder, templates: Sequence[str] = (SINGLE_TEMPLATE,),
                 batch_size: int = 256):
        super().__init__()
        hold_reference(self, "text_encoder", text_encoder)  # not a submodule: the backbone owns the text tower
        self.templates = tuple(templates)
        self.batch_size = batch_size
        self._cache: Dict[tuple, torch.Tensor] = TextEmbeddingCache(text_encoder)  # memory + disk
        # new text weights (a checkpoint load) invalidate cached embeddings
        self.register_load_state_dict_post_hook(lambda module, keys: module.clear_cache())

    def clear_cache(self) -> None:
        self._cache.clear()

    @torch.no_grad()
    def _encode_texts(self, texts: List[str]) -> torch.Tensor:
        """Texts -> unit-norm N×C float32, encoded with autocast off (the text weights' own precision) even
        when called inside an autocast region (a training step under AMP, TEST.AUTOCAST): the embeddings are
        cached in memory and on disk under a key without precision, and fp32 evaluation reuses them."""
        chunks = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(chunks) > 1:
            logger.info("Encoding %d texts on %s in %d batches ...", len(texts), self.text_encoder.device, len(chunks))
        feats = []
        no_autocast = torch.autocast(device_type=self.text_encoder.device.type, enabled=False)
        for i, chunk in enumerate(chunks):
            with no_autocast:
                feats.append(self.text_encoder(self.text_encoder.tokenize(chunk)).float())
            if len(chunks) > 1:
                logger.info("Encoded %d / %d texts", min((i + 1) * self.batch_size, len(texts)), len(texts))
        return F.normalize(torch.cat(feats).float(), dim=-1)

    def forward(self, class_names: Sequence[str]) -> torch.Tensor:
        """Class names (K) -> K×C unit-norm embeddings (no gradient)."""
        key = (tuple(class_names), self.templates, str(self.text_encoder.device))
        if key not in self._cache:
            synonyms = [[s.strip() for s in name.split(", ") if s.strip()] or [name] for name in class_names]
            flat = [s for group in synonyms for s in group]
            texts = [t.format(s) for s in flat for t in self.templates]
            feats = self._encode_texts(texts).view(len(flat), len(self.templates), -1)  # unit norm
            sizes = [len(g) for g in synonyms]
            per_template = torch.stack([F.normalize(g.mean(dim=0), dim=-1) for g in feats.split(sizes)])  # K×T×C
            self._cache[key] = F.normalize(per_template.mean(dim=1), dim=-1)
            logger.info("Encoded a vocabulary of %d classes with %d templates", len(class_names), len(self.templates))
        return self._cache[key]


class LearnablePrompts(nn.Module):
    """K learnable class prompts: ``PROMPT_LENGTH`` word slots in a fixed template.

    The slots replace the placeholder words of ``template.format("x x x x")`` in the frozen text
    encoder's token embeddings; gradients reach only the slots (PixelCLIP, Sec. 3.2).
    """

    PLACEHOLDER = "x"

    def __init__(self, text_encoder: TextEncoder, num_prompts: int = 64, prompt_length: int = 4,
                 template: str = "A photo of a {} in the scene", init_seed: int = 0, learnable: bool = True,
                 init_words: Sequence[str] = ()):
        super().__init__()
        hold_reference(self, "text_encoder", text_encoder)  # not a submodule: the backbone owns the text tower
        tokens = text_encoder.tokenize([template.format(" ".join([self.PLACEHOLDER] * prompt_length))])
        slot_id = int(text_encoder.tokenize([self.PLACEHOLDER])[0, 1])
        slots = (tokens[0] == slot_id).nonzero().flatten()
        if len(slots) != prompt_length:
            raise ValueError(f"prompt template '{template}' must hold exactly one '{{}}' and no word '{self.PLACEHOLDER}'")
        self.register_buffer("tokens", tokens, persistent=False)  # 1×L
        self.register_buffer("slot_positions", slots, persistent=False)  # PROMPT_LENGTH
        self.context = text_encoder.used_context(tokens)  # fixed tokens: read once here, not at every step
        # initialised from the token embeddings of random vocabulary ids: randint(vocab_size - 10) from a CPU
        # generator seeded with ``init_seed``; seed 0 gives the release's ids (it calls torch.manual_seed(0) and
        # draws from the global generator, which we leave alone). With ``init_words``: random tokens of those
        # words (a small text encoder's known vocabulary).
        generator = torch.Generator().manual_seed(init_seed)
        if init_words:
            pool = torch.unique(torch.cat([self._word_tokens(text_encoder, w) for w in init_words]))
            ids = pool[torch.randint(0, len(pool), (num_prompts, prompt_length), generator=generator)]
        else:
            vocab_size = text_encoder.token_embedding.weight.shape[0]
            ids = torch.randint(0, vocab_size - 10, (num_prompts, prompt_length), generator=generator)  # no SOT/EOT
        init = text_encoder.token_embedding.weight.detach()[ids.to(text_encoder.device)].clone().float()
        self.prompt_tokens = nn.Parameter(init, requires_grad=learnable)  # K×PROMPT_LENGTH×D

    @staticmethod
    def _word_tokens(text_encoder: TextEncoder, word: str) -> torch.Tensor:
        """Token ids of ``word`` without the start / end tokens."""
        tokens = text_encoder.tokenize([word])[0]
        ids = tokens[1:][tokens[1:] != 0][:-1]
        if len(ids) == 0:
            raise ValueError(f"MODEL.PIXELCLIP.PROMPT_INIT_WORDS: '{word}' gives no token")
        return ids.cpu()

    @property
    def num_prompts(self) -> int:
        return self.prompt_tokens.shape[0]

    def forward(self) -> torch.Tensor:
        """-> K×C prompt embeddings (not normalised), differentiable w.r.t. the slots."""
        k = self.num_prompts
        tokens = self.tokens.expand(k, -1)
        with torch.no_grad():
            base = self.text_encoder.token_embedding(self.tokens).expand(k, -1, -1)
        embeddings = base.clone()
        embeddings[:, self.slot_positions] = self.prompt_tokens.to(embeddings.dtype)
        context = self.context if self.text_encoder.truncate_context else None  # None: the full context, no sync
        return self.text_encoder.encode_embeddings(embeddings, tokens, context=context)
