"""Every configuration key of PixelCLIP, its default (the authors' release) and its meaning.

Shin et al., "Towards Open-Vocabulary Semantic Segmentation Without Semantic Labels", NeurIPS 2024.
Defaults are the ViT-B/16 values of the release (see shared METHOD.md); per-backbone YAMLs in
``configs/`` override what differs (ConvNeXt: full fine-tuning, 640² input, EPS 1).
"""
from detectron2.config import CfgNode as CN

# CLIP's normalisation in 0-255 units (OpenAI CLIP / open_clip's OPENAI_DATASET_MEAN/STD × 255).
CLIP_PIXEL_MEAN = [122.7709383, 116.7460125, 104.09373615]
CLIP_PIXEL_STD = [68.5005327, 66.6321579, 70.32316305]


def add_pixelclip_config(cfg: CN) -> None:
    """Add PixelCLIP's keys to a Detectron2 config in place (idempotent)."""
    if hasattr(cfg.MODEL, "PIXELCLIP"):
        return
    cfg.MODEL.META_ARCHITECTURE = "PixelCLIP"
    cfg.MODEL.BACKBONE.NAME = "PixelCLIPBackbone"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0  # the CLIP_FINETUNE policy decides what trains, not FREEZE_AT
    cfg.MODEL.PIXEL_MEAN = list(CLIP_PIXEL_MEAN)
    cfg.MODEL.PIXEL_STD = list(CLIP_PIXEL_STD)
    cfg.MODEL.WEIGHTS = ""

    cfg.MODEL.PIXELCLIP = CN()
    P = cfg.MODEL.PIXELCLIP
    # --- CLIP model (pixelclip/clip/build.py) ---
    P.CLIP_MODEL_NAME = "ViT-B-16-quickgelu"  # open_clip architecture (OpenAI weights need the -quickgelu variants)
    P.CLIP_PRETRAINED = "openai"  # open_clip pretrained tag, a local checkpoint file, or "" for random init
    P.CLIP_FINETUNE = "attention"  # which image-encoder weights train: attention|full|conv|prompt|none
    P.CLIP_RESOLUTION = (320, 320)  # (H, W) the image is resized to before the CLIP image encoder
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
    # per image, a memory guard for images with very many masks (the mapper and the model both apply it)
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
    cfg.MODEL.DINO.KMEANS_ITERS = 20  # Lloyd iterations
    cfg.MODEL.DINO.INPUT_SIZE = 448  # square side the image is resized to for DINO

    # --- data ---
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.DATASET_MAPPER_NAME = "pixelclip_unlabeled"  # name in pixelclip.data.MAPPER_REGISTRY
    cfg.INPUT.MIN_SIZE_TRAIN = (1024,)  # short side before the crop
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
    cfg.INPUT.MAX_SIZE_TRAIN = 4096
    cfg.INPUT.MIN_SIZE_TEST = 640  # short side at test time
    cfg.INPUT.MAX_SIZE_TEST = 2560
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = (640, 640)
    cfg.INPUT.COLOR_AUG_SSD = True  # SSD photometric distortion on both views
    cfg.INPUT.STRONG_AUG = True  # a strongly colour-augmented student view (teacher sees the weak one)
    cfg.INPUT.SIZE_DIVISIBILITY = -1

    # --- solver (pixelclip/solver.py) ---
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    cfg.SOLVER.BASE_LR = 2e-4
    cfg.SOLVER.BASE_LR_END = 1e-4  # the cosine schedule ends here (D2 key, set to the release's value)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    # SOLVER.WEIGHT_DECAY_NORM keeps Detectron2's 0.0, as the release (it never sets it): no weight decay on the
    # decoder's GroupNorm weights
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0  # the release's value; no nn.Embedding trains in PixelCLIP
    cfg.SOLVER.MAX_ITER = 10000
    cfg.SOLVER.IMS_PER_BATCH = 48
    cfg.SOLVER.CHECKPOINT_PERIOD = 1000
    cfg.SOLVER.CLIP_MULTIPLIER = 0.01  # lr multiplier of the CLIP image-encoder parameters
    cfg.SOLVER.PROMPT_MULTIPLIER = 10.0  # lr multiplier of the learnable prompt tokens
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"  # full_model: one L2 norm over all parameters
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.01
    cfg.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

    cfg.TEST.IMS_PER_BATCH = 1  # images per inference batch (any size works)
    cfg.TEST.EVAL_PERIOD = 0
    cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS = False

    # --- zero-shot mask classification (issue 7: pixelclip/modeling/mask_classifier.py,
    # zero_shot_mask_classifier.py, data/mask_classification_mapper.py, projects/MaskClassification) ---
    cfg.INPUT.TEST_MAPPER_NAME = ""  # "" = SemanticTestMapper; else the MAPPER_REGISTRY name the test loader uses
    cfg.MODEL.MASK_CLASSIFIER = CN()
    M = cfg.MODEL.MASK_CLASSIFIER
    M.MODE = "dense"  # dense: mean of dense features in each mask (PixelCLIP); crop: masked crops, global embedding
    M.MASK_SOURCE = "gt"  # gt: ground-truth segments (oracle); json: SA-1B-style files in MASK_DIR; model: PROPOSAL_MODEL
    M.GT_MASK_MODE = "class"  # gt: class = one mask per class present; component = one per connected component
    M.MASK_DIR = ""  # folder of <image stem>.json mask files (SA-1B schema) for MASK_SOURCE json
    M.MIN_MASK_AREA = 1  # masks with fewer pixels (at the image's original resolution) are dropped
    M.MAX_MASKS = 0  # keep at most this many masks per image, largest first (0 = all)
    M.POOL_RESOLUTION = 64  # dense mode: features are bilinearly resized to this square grid before mask pooling
    M.CROP_STYLE = "cropmask"  # crop: the mask's box; mask: image, background zeroed; cropmask: both (ZegFormer)
    M.CROP_SIZE = 0  # crop mode: side of each crop fed to CLIP (0 = the image tower's native input size)
    M.CROP_BATCH = 32  # crop mode: crops per image-encoder forward pass
    M.FILL_UNCOVERED = True  # pixels no mask covers take the dense per-pixel class scores (else 0 for every class)
    M.PANOPTIC_ON = False  # also output panoptic_seg: one segment per mask, overlaps resolved by class score
    M.OVERLAP_THRESHOLD = 0.8  # panoptic: a mask keeps its segment only if this fraction of it stays visible
    M.ALPHA = 0.4  # FC-CLIP geometric ensemble: weight of CLIP's scores on seen (in-vocabulary) classes
    M.BETA = 0.8  # FC-CLIP geometric ensemble: weight of CLIP's scores on unseen classes
    M.SEEN_CLASSES = ""  # classes the in-vocabulary classifier was trained on: dataset or vocabulary ("" = none)
    M.PROPOSAL_MODEL = CN()
    M.PROPOSAL_MODEL.CONFIG_FILE = ""  # D2 config of the mask proposal model (MASK_SOURCE model)
    M.PROPOSAL_MODEL.WEIGHTS = ""  # its checkpoint
    M.PROPOSAL_MODEL.CONFIG_FUNCS = []  # dotted paths adding its keys, e.g. ["mask2former.add_maskformer2_config"]
    M.PROPOSAL_MODEL.MASK_THRESHOLD = 0.5  # soft pred_masks (probabilities; logits get a sigmoid) above this are in
    M.PROPOSAL_MODEL.SCORE_THRESHOLD = 0.0  # proposals with a lower score are dropped
    M.PROPOSAL_MODEL.USE_CLASS_SCORES = True  # ensemble the proposal model's own class scores with CLIP's (ALPHA / BETA)
