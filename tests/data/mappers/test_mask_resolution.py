"""Masks reduced to MASK_RESOLUTION in the data loader (pixelclip/data/mappers/mask_resolution.py): the
nearest resizing of F.interpolate, and the model builds the same masks, targets and loss from them."""
import copy

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from pixelclip.data.mappers.mask_resolution import MaskResolutionMapper, reduce_masks
from tests.conftest import make_tiny_cfg


@pytest.mark.parametrize("shape,size", [((5, 640, 640), 256), ((3, 97, 131), 32), ((2, 20, 24), 32), ((4, 32, 32), 32),
                                        ((2, 48, 32), 32), ((2, 32, 48), 32)])
def test_reduce_masks_is_nearest_interpolation(shape, size):
    masks = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.5
    expected = F.interpolate(masks[None].float(), size=(size, size), mode="nearest")[0] > 0.5
    out = reduce_masks(masks, size)
    assert out.dtype == torch.bool and torch.equal(out, expected)


def _sample(seed):
    g = torch.Generator().manual_seed(seed)
    inst = Instances((96, 80))
    masks = torch.zeros(4, 96, 80, dtype=torch.bool)
    for m in masks:  # random rectangles, one of them a sliver that vanishes at 32×32
        y, x = torch.randint(0, 60, (2,), generator=g).tolist()
        m[y:y + 30, x:x + 25] = True
    masks[3] = False
    masks[3, 40, 41] = True
    inst.gt_masks = BitMasks(masks)
    return {"image": torch.randint(0, 256, (3, 96, 80), dtype=torch.uint8, generator=g), "instances": inst}


def test_the_model_gets_the_same_masks_targets_and_loss_from_reduced_masks():
    torch.manual_seed(0)
    model = build_model(make_tiny_cfg()).train()
    r = model.mask_resolution
    full = [_sample(0), _sample(1)]
    mapper = MaskResolutionMapper(lambda d: copy.deepcopy(d), r)
    reduced = [mapper(d) for d in full]
    assert all(d["instances"].gt_masks.tensor.shape[-2:] == (r, r) for d in reduced)
    masks_full, masks_reduced = model._masks_of(full), model._masks_of(reduced)
    assert [len(m) for m in masks_full] == [3, 3]  # the sliver is dropped either way
    assert all(torch.equal(a, b) for a, b in zip(masks_full, masks_reduced))
    twin = copy.deepcopy(model)
    assert torch.equal(model(full)["loss_masks"], twin(reduced)["loss_masks"])


def test_the_wrapper_passes_skipped_samples_and_the_skip_counter_through():
    class Mapper:
        skip_counter = object()

        def __call__(self, d):
            return None

    mapper = MaskResolutionMapper(Mapper(), 32)
    assert mapper({"file_name": "x"}) is None and mapper.skip_counter is Mapper.skip_counter
    no_masks = MaskResolutionMapper(lambda d: {"image": torch.zeros(3, 8, 8)}, 32)
    assert set(no_masks({})) == {"image"}
