"""Every configuration key of PixelCLIP, its default and its meaning.

Shin et al., "Towards Open-Vocabulary Semantic Segmentation Without Semantic Labels", NeurIPS 2024.
:func:`add_pixelclip_config` adds PixelCLIP's own keys and changes no key Detectron2 (or a framework
such as Mask2Former / FC-CLIP) has already set, so adding it to another model's config changes nothing
about that model. ``MODEL.PIXELCLIP.*`` defaults are the release's ViT-B/16 values; the keys this adds in
Detectron2's own sections (``INPUT.*``, ``SOLVER.*``, ``TEST.*``) default to what Detectron2 does without
them. The paper's training recipe (meta-architecture, CLIP normalisation, AdamW, lr multipliers,
clipping, crops, batch size, ...) is ``configs/Base-PixelCLIP.yaml``, which every config inherits;
per-backbone YAMLs override what differs (ConvNeXt: full fine-tuning, 640² input, EPS 1).
"""
from pathlib import Path
from typing import Callable, Sequence

from detectron2.config import CfgNode as CN

from .errors import ConfigError

# CLIP's normalisation in 0-255 units (OpenAI CLIP / open_clip's OPENAI_DATASET_MEAN/STD × 255).
CLIP_PIXEL_MEAN = [122.7709383, 116.7460125, 104.09373615]
CLIP_PIXEL_STD = [68.5005327, 66.6321579, 70.32316305]

# The recipe every PixelCLIP config inherits (in the source checkout, beside the package).
BASE_CONFIG_FILE = Path(__file__).resolve().parents[1] / "configs" / "Base-PixelCLIP.yaml"


def _add_if_absent(node: CN, key: str, value) -> None:
    """Add ``key`` to ``node`` unless another config function already did (Mask2Former and FC-CLIP
    add some of the same keys, e.g. ``INPUT.COLOR_AUG_SSD``); their value is kept."""
    if key not in node:
        node[key] = value


def add_pixelclip_config(cfg: CN) -> None:
    """Add PixelCLIP's keys to a Detectron2 config in place (idempotent); no existing key changes."""
    if hasattr(cfg.MODEL, "PIXELCLIP"):
        return
    cfg.MODEL.PIXELCLIP = CN()
    P = cfg.MODEL.PIXELCLIP
    # --- CLIP model (pixelclip/clip/build.py) ---
    P.CLIP_MODEL_NAME = "ViT-B-16-quickgelu"  # open_clip architecture (OpenAI weights need the -quickgelu variants)
    P.CLIP_PRETRAINED = "openai"  # open_clip pretrained tag, a local checkpoint file, or "" for random init
    P.CLIP_FINETUNE = "attention"  # which image-encoder weights train: attention|full|conv|prompt|none
    P.CLIP_RESOLUTION = (320, 320)  # (H, W) the image is resized to before the CLIP image encoder
    # last ViT block of the dense path, for student, EMA teacher and inference alike: value (the release's
    # MaskCLIP-style value path)|vanilla|maskclip|sclip|clearclip|naclip (pixelclip/clip/dense_modes.py); ConvNeXt: value
    P.DENSE_MODE = "value"
    # MODEL.WEIGHTS that leave the image encoder, the prompts or the decoder without weights (another model's
    # checkpoint) stop the run (pixelclip/checkpoint.py); True loads such a file partially on purpose
    P.ALLOW_PARTIAL_WEIGHTS = False
    # recompute the student image tower's block activations in the backward pass instead of storing them
    # (torch.utils.checkpoint): same loss and gradients, far less activation memory, about 1/3 more tower time
    P.GRADIENT_CHECKPOINTING = False
    # on CUDA: TF32 for float32 matmuls and cuDNN convolutions (the release's torch.set_float32_matmul_precision
    # ("high")); False keeps full float32 (pixelclip/utils/cuda_settings.py)
    P.ALLOW_TF32 = True
    # --- learnable class prompts (pixelclip/clip/text.py) ---
    P.NUM_PROMPTS = 64  # K, number of global semantic clusters / learnable class prompts
    P.PROMPT_LENGTH = 4  # learnable word slots per prompt
    P.PROMPT_TEMPLATE = "A photo of a {} in the scene"  # {} is filled by the PROMPT_LENGTH slots
    # seed of the random vocabulary ids that initialise the slots: ids = randint(vocab_size - 10, (K, L)) from a
    # CPU generator with this seed; 0 draws exactly the release's ids (it seeds torch's global RNG with 0)
    P.PROMPT_INIT_SEED = 0
    # "" = any vocabulary id (the release); else "a,b,c" or a .txt/.json word file: draw the slots from
    # the tokens of these words (for a small CLIP whose text encoder only knows its captions' words)
    P.PROMPT_INIT_WORDS = ""
    P.LEARN_PROMPTS = True  # False freezes the prompt tokens at their initial value (ablation)
    # --- online clustering (pixelclip/modeling/clustering.py) ---
    P.MASK_RESOLUTION = 256  # side of the square grid where masks, mask features and targets live
    # 0 = every mask (the release clusters them all: its MAX_MASKS is read but unused); N > 0 keeps the N largest
    # per image (largest after the crop), a memory guard for images with very many masks; applied by the
    # training mapper to file masks (online DINO masks number MODEL.DINO.NUM_CLUSTERS)
    P.MAX_MASKS = 0
    P.EPS = 100.0  # scale of the cosine logits fed to Sinkhorn-Knopp (ε)
    P.SINKHORN_ITERS = 3  # Sinkhorn-Knopp iterations
    # --- momentum teacher (pixelclip/modeling/momentum.py) ---
    P.USE_MOMENTUM = True  # False: the student's own (detached) features decide the clustering
    P.MOMENTUM = 0.999  # EMA rate: teacher <- m * teacher + (1 - m) * student, once per step
    # --- light decoder (pixelclip/modeling/decoder.py, training only) ---
    P.DECODER_CHANNELS = (64, 32)  # channels after the first and the second ×2 upsampling
    P.DECODER_NORM_GROUPS = 0  # GroupNorm groups in the decoder; 0 = channels // 16 per layer (the release)
    # --- inference (pixelclip/modeling/pixelclip.py) ---
    P.TEST = CN()
    # text templates ensembled (pixelclip/clip/text.py): single (the release's "A photo of a {} in the scene"),
    # imagenet_select (the release's 8, used by its evaluation for every benchmark), scene14, imagenet (OpenAI's 80)
    P.TEST.TEMPLATES = "imagenet_select"
    P.TEST.FEATURE_RESOLUTION = 64  # dense features are bilinearly resized to this square before scoring
    P.TEST.MODE = "whole"  # whole: resize the image to CLIP_RESOLUTION; slide: overlapping windows
    P.TEST.SLIDE_OVERLAP = 0.333  # fraction of a window shared with its neighbour in slide mode
    P.TEST.FLIP = False  # also score the horizontally flipped image and average the logits
    P.TEST.AUTOCAST = ""  # ""|fp16|bf16: autocast for inference (kept off on CPU unless asked)
    # logits: [{"sem_seg": K×H×W}] (Detectron2's contract); labels: [{"sem_seg_labels": H×W}], the arg-max
    # of the same upsampling without the K×H×W tensor (pixelclip/modeling/postprocess.py). The
    # Trainer's evaluation always uses labels: its SemSegEvaluator needs nothing else.
    P.TEST.OUTPUT = "logits"
    P.TEST.VOCABULARY = ""  # "" = the test dataset's stuff_classes; else "a,b,c" or a .txt/.json class file

    # --- online DINO masks (pixelclip/masks/dino.py); masks come from files when disabled ---
    cfg.MODEL.DINO = CN()
    cfg.MODEL.DINO.ENABLED = False  # replace file masks by k-means clusters of DINO patch tokens
    cfg.MODEL.DINO.MODEL_NAME = "vit_small_patch16_224"  # timm architecture of the DINO ViT-S/16
    cfg.MODEL.DINO.WEIGHTS = ""  # local file with the DINO weights (timm or original key layout)
    cfg.MODEL.DINO.NUM_CLUSTERS = 16  # k-means clusters per image, each becomes one mask
    # k-means as the release (fast_pytorch_kmeans defaults): k random tokens as initial centres (torch's RNG),
    # Lloyd steps until the centres' summed squared shift is at most KMEANS_TOL or KMEANS_ITERS steps ran
    cfg.MODEL.DINO.KMEANS_ITERS = 100
    cfg.MODEL.DINO.KMEANS_TOL = 1e-4
    # 0 = DINO sees the training crop as it is, sides cut down to a multiple of 16 (the release: 640² -> 40×40
    # tokens); N > 0 resizes the crop to N×N first (fewer tokens, less memory)
    cfg.MODEL.DINO.INPUT_SIZE = 0

    # --- data (keys Detectron2 lacks; the recipe's values are in configs/Base-PixelCLIP.yaml) ---
    _add_if_absent(cfg.INPUT, "DATASET_MAPPER_NAME", "pixelclip_unlabeled")  # pixelclip.data.MAPPER_REGISTRY name
    _add_if_absent(cfg.INPUT, "COLOR_AUG_SSD", False)  # SSD photometric distortion on both views (recipe: True)
    _add_if_absent(cfg.INPUT, "STRONG_AUG", False)  # a strongly colour-augmented student view (recipe: True)
    # with STRONG_AUG: black out a random box of the strong view (sides 0.1-0.5 of the crop's) and remove it from
    # every mask, dropping the masks it empties (the release's cutout; pixelclip/data/mappers/cutout.py)
    _add_if_absent(cfg.INPUT, "STRONG_CUTOUT", True)

    # --- solver (pixelclip/solver.py; keys Detectron2 lacks) ---
    _add_if_absent(cfg.SOLVER, "OPTIMIZER", "SGD")  # SGD (what Detectron2 builds) | ADAMW (recipe)
    _add_if_absent(cfg.SOLVER, "CLIP_MULTIPLIER", 1.0)  # lr multiplier of the CLIP image encoder (recipe: 0.01)
    _add_if_absent(cfg.SOLVER, "PROMPT_MULTIPLIER", 1.0)  # lr multiplier of the learnable prompts (recipe: 10)
    # autocast dtype of SOLVER.AMP.ENABLED training (CUDA only): float16 (D2's, with loss scaling) | bfloat16
    _add_if_absent(cfg.SOLVER.AMP, "PRECISION", "float16")
    _add_if_absent(cfg.TEST, "IMS_PER_BATCH", 1)  # images per inference batch (any size works)


def _value(cfg: CN, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _value_rules():
    """(key, whether a value is usable, what it must be, an example) for the keys no model can be
    built or trained with outside their range; the named choices come from the modules that use them."""
    from .clip.build import CLIP_FINETUNE_POLICIES
    from .clip.dense_modes import DENSE_MODES
    from .clip.text import TEMPLATE_SETS

    def at_least(low, integer=True):
        return lambda v: (_is_int(v) if integer else _is_number(v)) and v >= low

    def one_of(choices):
        return lambda v: v in choices

    pair = lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and x > 0 for x in v)  # noqa: E731
    return (
        ("MODEL.PIXELCLIP.PROMPT_LENGTH", at_least(1), "an integer of at least 1", "4 (the release's)"),
        ("MODEL.PIXELCLIP.CLIP_RESOLUTION", pair, "two positive integers (H, W)", "(320, 320)"),
        ("MODEL.PIXELCLIP.CLIP_FINETUNE", one_of(CLIP_FINETUNE_POLICIES), "one of " + ", ".join(CLIP_FINETUNE_POLICIES),
         "attention (the release's)"),
        ("MODEL.PIXELCLIP.DENSE_MODE", one_of(DENSE_MODES), "one of " + ", ".join(DENSE_MODES), "value (the release's)"),
        ("MODEL.PIXELCLIP.MASK_RESOLUTION", at_least(1), "an integer of at least 1", "256"),
        ("MODEL.PIXELCLIP.MAX_MASKS", at_least(0), "an integer of at least 0 (0 keeps every mask)", "0"),
        ("MODEL.PIXELCLIP.EPS", lambda v: _is_number(v) and v > 0, "a number above 0", "100.0"),
        ("MODEL.PIXELCLIP.SINKHORN_ITERS", at_least(0), "an integer of at least 0", "3"),
        ("MODEL.PIXELCLIP.MOMENTUM", lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]", "0.999"),
        ("MODEL.PIXELCLIP.DECODER_CHANNELS", lambda v: isinstance(v, (list, tuple)) and len(v) == 2
         and all(_is_int(x) and x > 0 for x in v), "two positive integers", "(64, 32)"),
        ("MODEL.PIXELCLIP.DECODER_NORM_GROUPS", at_least(0), "an integer of at least 0 (0: channels // 16)", "0"),
        ("MODEL.PIXELCLIP.TEST.TEMPLATES", one_of(TEMPLATE_SETS), "one of " + ", ".join(TEMPLATE_SETS),
         "imagenet_select"),
        ("MODEL.PIXELCLIP.TEST.FEATURE_RESOLUTION", at_least(1), "an integer of at least 1", "64"),
        ("MODEL.PIXELCLIP.TEST.MODE", one_of(("whole", "slide")), "whole or slide", "whole"),
        ("MODEL.PIXELCLIP.TEST.SLIDE_OVERLAP", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)", "0.333"),
        ("MODEL.PIXELCLIP.TEST.AUTOCAST", one_of(("", "fp16", "bf16")), "'', fp16 or bf16", '""'),
        ("MODEL.PIXELCLIP.TEST.OUTPUT", one_of(("logits", "labels")), "logits or labels", "logits"),
        ("MODEL.DINO.NUM_CLUSTERS", at_least(1), "an integer of at least 1", "16"),
        ("MODEL.DINO.KMEANS_ITERS", at_least(1), "an integer of at least 1", "100 (the release's)"),
        ("MODEL.DINO.KMEANS_TOL", lambda v: _is_number(v) and v >= 0, "a number of at least 0", "1e-4 (the release's)"),
        ("MODEL.DINO.INPUT_SIZE", at_least(0), "an integer of at least 0 (0: the crop as it is)", "0"),
    )


def check_pixelclip_values(cfg: CN, source: str = "config", opts: Sequence[str] = ()) -> None:
    """Values of ``MODEL.PIXELCLIP`` and ``MODEL.DINO`` that no model can be built or trained with,
    checked before any building.

    Arguments:
        source: where the config came from (a file, "command line"), named in the message.
        opts: the command line's ``KEY VALUE`` overrides: a key given there is said to come from the
            command line.

    Raises:
        ConfigError: ``NUM_PROMPTS`` (K) below 1, a value outside its range (e.g. ``MOMENTUM`` 1.5,
            ``MASK_RESOLUTION`` 0), an unknown choice (``DENSE_MODE``, ``TEST.MODE``, ...), or
            ``MODEL.DINO.ENABLED`` without ``MODEL.DINO.WEIGHTS``.
    """
    if not hasattr(cfg.MODEL, "PIXELCLIP"):
        return
    given = set(list(opts)[::2])

    def where(key: str) -> str:
        return "command line" if key in given else source

    k = cfg.MODEL.PIXELCLIP.NUM_PROMPTS
    if not _is_int(k) or k < 1:
        raise ConfigError(f"{where('MODEL.PIXELCLIP.NUM_PROMPTS')}: MODEL.PIXELCLIP.NUM_PROMPTS is {k!r}, but K, the "
                          "number of learnable class prompts (global semantic clusters), must be at least 1",
                          "give a positive number, e.g. MODEL.PIXELCLIP.NUM_PROMPTS 64 (the paper's)")
    for key, usable, requirement, example in _value_rules():
        try:
            value = _value(cfg, key)
        except KeyError:  # a config without that section (another project's)
            continue
        if not usable(value):
            raise ConfigError(f"{where(key)}: {key} is {value!r}, but it must be {requirement}",
                              f"give another value, e.g. {key} {example}")
    dino = getattr(cfg.MODEL, "DINO", None)
    if dino is not None and dino.get("ENABLED", False) and not dino.get("WEIGHTS", ""):
        raise ConfigError(f"{where('MODEL.DINO.ENABLED')}: MODEL.DINO.ENABLED needs MODEL.DINO.WEIGHTS, a local file "
                          "with the DINO ViT-S/16 weights", "give MODEL.DINO.WEIGHTS /path/to/dino_deitsmall16_pretrain.pth "
                          "(or 'random' for tests)")


def get_pixelclip_cfg(config_file: str = "", opts: Sequence[str] = (),
                      config_funcs: Sequence[Callable[[CN], None]] = ()) -> CN:
    """Detectron2's defaults + :func:`add_pixelclip_config` + ``config_funcs`` (a project's own config
    functions, e.g. ``projects/MaskClassification``'s) + the recipe (``configs/Base-PixelCLIP.yaml``),
    then ``config_file`` (which usually inherits the recipe already) and ``opts`` (``KEY VALUE ...``).

    Raises:
        FileNotFoundError: the recipe file is not beside the package (it ships with the source checkout).
    """
    from detectron2.config import get_cfg

    if not BASE_CONFIG_FILE.is_file():
        raise FileNotFoundError(f"PixelCLIP's recipe {BASE_CONFIG_FILE} is missing: it ships with the source "
                                "checkout of pixelclip-d2 (configs/), which an editable install keeps")
    cfg = get_cfg()
    add_pixelclip_config(cfg)
    for add_config in config_funcs:
        add_config(cfg)
    cfg.merge_from_file(str(BASE_CONFIG_FILE))
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return cfg
