"""ClipPreprocessor moves uint8 images to the device before converting them (a quarter of the bytes of float32
cross to a GPU; ``Tensor.to(device, dtype)`` converts on the host first), with the same values."""
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from pixelclip.config import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD
from pixelclip.modeling.preprocess import ClipPreprocessor


class RecordTo(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "to" and args and args[0].dtype == torch.uint8:
            self.calls.append((args[1:], kwargs))
        return func(*args, **kwargs)


def test_uint8_images_are_copied_then_converted_with_the_same_values():
    pre = ClipPreprocessor(CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, (32, 32))
    images = [torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
              for i in range(2)]
    with RecordTo() as record:
        out = pre.batch(images)
    # each uint8 image: .to(device) without a dtype, then .to(float32) of that copy (on CPU the copy is the image)
    assert record.calls == [((pre.device,), {}), ((torch.float32,), {})] * 2
    mean, std = torch.tensor(CLIP_PIXEL_MEAN).view(3, 1, 1), torch.tensor(CLIP_PIXEL_STD).view(3, 1, 1)
    expected = torch.cat([(F.interpolate(im.float()[None], size=(32, 32), mode="bilinear", align_corners=False) - mean)
                          / std for im in images])
    assert torch.equal(out, expected)


def test_bgr_images_reach_clip_as_rgb():
    """INPUT.FORMAT BGR (Detectron2's default): the image is flipped to RGB before CLIP's RGB mean and std."""
    rgb = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    as_rgb = ClipPreprocessor(CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, (16, 16), "RGB")
    as_bgr = ClipPreprocessor(CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, (16, 16), "BGR")
    assert torch.equal(as_bgr.batch([rgb.flip(0)]), as_rgb.batch([rgb]))
    assert torch.equal(as_bgr.normalize(rgb.flip(0)), as_rgb.normalize(rgb))
    assert not torch.equal(as_rgb.normalize(rgb.flip(0)), as_rgb.normalize(rgb))


def test_the_model_takes_input_format_from_the_config():
    from pixelclip.modeling.pixelclip import PixelCLIP
    from tests.conftest import make_tiny_cfg

    assert PixelCLIP.from_config(make_tiny_cfg(**{"INPUT.FORMAT": "BGR"}))["input_format"] == "BGR"
