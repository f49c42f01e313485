"""The training mapper: an image and its unlabeled masks -> weak view, strong view, BitMasks.

Registered in :data:`pixelclip.data.MAPPER_REGISTRY` as ``"pixelclip_unlabeled"`` (the default of
``cfg.INPUT.DATASET_MAPPER_NAME``). The release's SA-1B pipeline (PixelCLIP, Sec. 4.1): short side resized to
``INPUT.MIN_SIZE_TRAIN`` (long side at most ``INPUT.MAX_SIZE_TRAIN``), a random ``INPUT.CROP.SIZE`` crop,
SSD colour augmentation, random flip; masks follow the image through the same transform objects. The
student's strong view adds colour jitter, grayscale and blur (``strong_color.py``) and the release's
cutout (``cutout.py``: a black box, also removed from the masks; masks it empties are dropped).

Policies:
- Corrupt sample (unreadable/truncated image, bad mask file): logged with its path and reason,
  counted per reason in ``skip_counter`` (``pixelclip/data/skips.py``: shared by the data-loader
  workers, summed in one line at the end of the run), and ``None`` is returned; the train loader's
  ``SkipAwareMapDataset`` (D2's ``MapDataset``) then maps another random index, so a long run never
  stops and no batch shrinks, unless no sample at all can be used (then it stops, with the counts).
- Empty crop (every mask falls outside it): up to ``crop_retries`` new crops are drawn; if all
  are empty the sample is returned with zero masks and a counted warning; the model skips images
  without masks.
- ``MODEL.DINO.ENABLED``: masks come online from DINO, no mask file is read, and
  ``instances.gt_masks`` is empty (0×H×W).
"""
import copy
import logging
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.projects.point_rend import ColorAugSSDTransform
from detectron2.structures import BitMasks, Instances

from ..mask_io import MaskFileError, read_mask_file
from ..registry import register_mapper
from ..skips import SkipCounter
from .mask_transforms import transform_rle_masks
from .cutout import apply_cutout, cutout_box
from .strong_color import StrongColorAugmentation

__all__ = ["PixelCLIPUnlabeledMapper"]

logger = logging.getLogger(__name__)


class PixelCLIPUnlabeledMapper:
    """Map ``{"file_name", "mask_file"?, "image_id", ...}`` to the PixelCLIP training input.

    Returns:
        ``{"image": uint8 3×H×W (weak view, ``image_format``), "image_strong": uint8 3×H×W
        (the strong view; the same tensor as ``image`` without strong augmentation),
        "instances": Instances(gt_masks=BitMasks N×H×W, largest first, N <= max_masks if max_masks > 0),
        "height", "width" (of the image file), "file_name", "image_id"}``, or ``None`` for a
        corrupt sample.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[T.Augmentation],
        image_format: str = "RGB",
        color_aug_ssd: bool = False,
        strong_aug: Optional[StrongColorAugmentation] = None,
        max_masks: int = 0,
        masks_from_files: bool = True,
        crop_retries: int = 5,
        cutout: bool = False,
    ):
        """
        Args:
            is_train: training (the only use of masks) or not (logged only).
            augmentations: geometric augmentations applied to image and masks alike.
            image_format: ``detectron2.data.detection_utils.read_image`` format (RGB or BGR).
            color_aug_ssd: SSD photometric distortion on the image (both views), inserted before the first
                flip of ``augmentations`` (after the resize and crop), where the release applies it.
            strong_aug: builds the student view from the weak one; None: the views are equal.
            max_masks: keep at most this many masks, largest (after the crop) first; 0 keeps all.
            masks_from_files: False when masks are made online (DINO): no mask file is read.
            crop_retries: new crops drawn when every mask falls outside the crop.
            cutout: with ``strong_aug``, cut the release's box out of the strong view and the masks.
        """
        self.is_train = is_train
        augmentations = list(augmentations)
        if color_aug_ssd:  # after the crop, before the flip: the release's order (cv2's rounding depends on it)
            flips = [i for i, a in enumerate(augmentations) if isinstance(a, T.RandomFlip)]
            augmentations.insert(flips[0] if flips else len(augmentations), ColorAugSSDTransform(image_format))
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.strong_aug = strong_aug
        self.max_masks = max_masks
        self.masks_from_files = masks_from_files
        self.crop_retries = max(1, crop_retries)
        self.cutout = cutout and strong_aug is not None
        self.num_corrupt = 0  # per worker process
        self.num_empty = 0
        self.skip_counter = SkipCounter()  # the trainer gives one with a row per data-loader worker
        mode = "training" if is_train else "inference"
        logger.info(f"[PixelCLIPUnlabeledMapper] {mode}: {augmentations}, SSD colour: {color_aug_ssd}, "
                    f"strong view: {strong_aug}, cutout: {self.cutout}, masks from files: {masks_from_files}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        if is_train:
            augs: List[T.Augmentation] = [T.ResizeShortestEdge(
                cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)]
            if cfg.INPUT.CROP.ENABLED:
                augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
            if cfg.INPUT.RANDOM_FLIP != "none":
                augs.append(T.RandomFlip(horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                                         vertical=cfg.INPUT.RANDOM_FLIP == "vertical"))
        else:
            augs = [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)]
        strong = is_train and cfg.INPUT.STRONG_AUG
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "color_aug_ssd": is_train and cfg.INPUT.COLOR_AUG_SSD,
            "strong_aug": StrongColorAugmentation(cfg.INPUT.FORMAT) if strong else None,
            "max_masks": cfg.MODEL.PIXELCLIP.MAX_MASKS,
            "masks_from_files": not cfg.MODEL.DINO.ENABLED,
            "cutout": strong and cfg.INPUT.STRONG_CUTOUT,
        }

    def __call__(self, dataset_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        dataset_dict = copy.copy(dataset_dict)
        file_name = dataset_dict["file_name"]
        mask_file = dataset_dict.get("mask_file")
        if self.masks_from_files and not mask_file:
            raise ValueError(
                f"{file_name}: the dataset dict has no 'mask_file'; register the dataset with a mask "
                "folder (register_unlabeled_folder(name, images, masks)) or set MODEL.DINO.ENABLED True")
        try:
            image = utils.read_image(file_name, format=self.image_format)
        except Exception as e:  # truncated / unreadable / not an image: skip, never crash the run
            return self._skip(file_name, f"corrupt or unreadable image ({type(e).__name__}: {e})", "corrupt image")
        height, width = image.shape[:2]
        annotations: List[Dict[str, Any]] = []
        if self.masks_from_files:
            try:
                annotations = read_mask_file(mask_file, image_size=(height, width))["annotations"]
            except MaskFileError as e:
                return self._skip(mask_file, f"bad mask file, {e.field or 'file'}: {e.problem}", "bad mask file")

        try:
            image, masks = self._transform(image, annotations, mask_file)
        except MaskFileError as e:
            return self._skip(mask_file, f"bad mask file, {e.field or 'file'}: {e.problem}", "bad mask file")
        if annotations and len(masks) == 0:
            self.num_empty += 1
            self.skip_counter.add("no mask left after cropping", file_name)
            logger.warning(f"{file_name}: no mask left in {self.crop_retries} crops; returned with 0 "
                           f"masks (the model skips it) [{self.num_empty} such samples in this worker]")

        weak = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.strong_aug is not None:
            strong_image = self.strong_aug(image)
            if self.cutout:
                strong_image, masks = apply_cutout(strong_image, masks, cutout_box(*strong_image.shape[:2]))
            strong = torch.as_tensor(np.ascontiguousarray(strong_image.transpose(2, 0, 1)))
        else:
            strong = weak
        instances = Instances(tuple(image.shape[:2]))
        instances.gt_masks = BitMasks(torch.from_numpy(masks))
        dataset_dict.update({
            "image": weak, "image_strong": strong, "instances": instances,
            "height": height, "width": width,
        })
        return dataset_dict

    def _transform(
        self, image: np.ndarray, annotations: List[Dict[str, Any]], mask_file: Optional[str]
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Geometric transforms of image and masks; new crops while every mask is cropped away.

        Returns the transformed image H'×W'×3 and bool masks N×H'×W' (largest first).
        """
        hw = image.shape[:2]
        for _ in range(self.crop_retries if annotations else 1):
            aug_input = T.AugInput(image)
            transforms = self.augmentations(aug_input)
            masks, _ = transform_rle_masks(annotations, transforms, hw, path=mask_file)
            if len(masks) or not annotations:
                break
        out = aug_input.image
        if masks.shape[1:] != out.shape[:2]:  # only with no annotation at all
            masks = np.zeros((0,) + out.shape[:2], dtype=bool)
        if len(masks):
            areas = masks.reshape(len(masks), -1).sum(axis=1)
            order = np.argsort(-areas, kind="stable")[: self.max_masks or None]  # 0 keeps all
            masks = masks[order]
        return out, np.ascontiguousarray(masks)

    def _skip(self, path: str, reason: str, kind: str) -> None:
        """Log and count a corrupt sample (``kind``: one of ``pixelclip.data.skips.SKIP_REASONS``);
        ``None`` makes D2's MapDataset draw another index."""
        self.num_corrupt += 1
        self.skip_counter.add(kind, path)
        logger.warning(f"Skipping {path}: {reason} [{self.num_corrupt} corrupt samples skipped in "
                       "this worker; another image is drawn]")
        return None


register_mapper("pixelclip_unlabeled")(PixelCLIPUnlabeledMapper)  # the default INPUT.DATASET_MAPPER_NAME
