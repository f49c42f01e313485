"""pixelclip/utils/cuda_settings.py: TF32 follows MODEL.PIXELCLIP.ALLOW_TF32 on CUDA runs only."""
import pytest
import torch

from pixelclip.utils.cuda_settings import apply_cuda_settings
from tests.conftest import make_tiny_cfg


@pytest.fixture
def restore_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_on_cuda_by_default_and_off_on_request(restore_flags):
    cfg = make_tiny_cfg(**{"MODEL.DEVICE": "cuda"})  # the flags can be set without a GPU
    assert cfg.MODEL.PIXELCLIP.ALLOW_TF32 is True and cfg.CUDNN_BENCHMARK is True  # the recipe
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    assert apply_cuda_settings(cfg) is True
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    cfg.MODEL.PIXELCLIP.ALLOW_TF32 = False
    assert apply_cuda_settings(cfg) is False
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_cpu_runs_leave_the_flags_alone(restore_flags):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    assert apply_cuda_settings(make_tiny_cfg()) is False
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, True)
