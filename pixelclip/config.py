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


def check_pixelclip_values(cfg: CN, source: str = "config") -> None:
    """Values of ``MODEL.PIXELCLIP`` that no model can be built with, checked before any building.

    Arguments:
        source: where the config came from (a file, "command line"), named in the message.

    Raises:
        ConfigError: ``NUM_PROMPTS`` (K) below 1.
    """
    if not hasattr(cfg.MODEL, "PIXELCLIP"):
        return
    k = cfg.MODEL.PIXELCLIP.NUM_PROMPTS
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"{source}: MODEL.PIXELCLIP.NUM_PROMPTS is {k!r}, but K, the number of learnable class "
                          "prompts (global semantic clusters), must be at least 1",
                          "give a positive number, e.g. MODEL.PIXELCLIP.NUM_PROMPTS 64 (the paper's)")


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
