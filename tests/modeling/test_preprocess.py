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
