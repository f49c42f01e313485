"""From low-resolution logits to image-size predictions.

``resize_logits`` gives K×H×W logit maps (Detectron2's ``sem_seg`` output). ``upsample_argmax``
gives the H×W arg-max labels of the same bilinear upsampling without building the K×H×W tensor:
evaluation only needs the labels, and upsampling 150 maps to 512×683 costs more than the CLIP
image encoder on a CPU.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F


def resize_logits(logits: List[torch.Tensor], sizes: List[Tuple[int, int]]) -> List[torch.Tensor]:
    """Bilinearly resize K×h×w logit maps to their images' sizes, one batched call per distinct
    (input size, output size) pair. Returns K×H×W maps in input order.

    The maps are resized in channels-last memory (H×W×K in memory): the CPU kernel is about twice as
    fast, and the per-pixel arg-max over K that evaluators take then reads contiguous memory."""
    out: List[Optional[torch.Tensor]] = [None] * len(logits)
    groups: Dict[tuple, List[int]] = {}
    for i, (lg, size) in enumerate(zip(logits, sizes)):
        groups.setdefault((tuple(lg.shape[-2:]), tuple(int(s) for s in size)), []).append(i)
    for (_, size), idx in groups.items():
        stacked = torch.stack([logits[i] for i in idx]).contiguous(memory_format=torch.channels_last)
        resized = F.interpolate(stacked, size=size, mode="bilinear", align_corners=False)
        for j, i in enumerate(idx):
            out[i] = resized[j]
    return out


def _linear_taps(in_size: int, out_size: int, device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source cell and weights of 1-D linear resizing with ``align_corners=False`` (PyTorch's rule:
    src = (dst + 0.5) * in / out - 0.5, clamped at 0; the right tap is clamped at the last sample).

    Returns:
        index (out_size,) int64: the left tap i0 (the right tap is i0 + 1 in an edge-padded signal);
        w0, w1 (out_size,) float32: the weights of the left and right taps.
    """
    scale = torch.tensor(in_size, dtype=torch.float32) / out_size
    # (dst + 0.5) * scale - 0.5 rounded to float32 once (computed in float64): this reproduces the
    # weights of PyTorch's CPU kernel exactly (tests/modeling/test_postprocess.py), float32 steps do not.
    src = ((torch.arange(out_size, dtype=torch.float32) + 0.5).double() * scale.double() - 0.5).float().clamp_min(0)
    index = src.to(torch.int64).clamp_max(in_size - 1)
    w1 = (src - index).clamp(0, 1)  # at the last sample both taps read it (edge padding)
    return index.to(device), (1 - w1).to(device), w1.to(device)


def upsample_argmax(
    logits: torch.Tensor, size: Tuple[int, int], block_rows: int = 16, max_elements: int = 1 << 24
) -> torch.Tensor:
    """``F.interpolate(logits[None], size, mode="bilinear", align_corners=False)[0].argmax(0)``
    without the K×H×W tensor.

    A bilinear sample is a convex combination of the 4 corners of its source cell, so within a cell
    a class scores between its smallest and its largest corner logit. The class with the largest
    smallest corner sets a floor, and a class whose largest corner stays below the floor of every
    cell can win nowhere (on the benchmark's 150-class logits, 5 to 56 classes remain per block of
    source rows). Those are interpolated with PyTorch's taps and weights, first along x, then along y,
    and compared; ties go to the lower class id, as ``argmax`` does. Labels can differ from the full
    path only where two classes tie at float precision (PyTorch's contiguous and channels-last kernels
    differ at that level too). The pruning is redone for every block of ``block_rows`` source rows.

    Args:
        logits: K×h×w scores (float).
        size: (H, W) of the output.
        block_rows: source rows pruned and interpolated together.
        max_elements: the largest K'×rows×W block held at once (bounds memory).

    Returns:
        H×W int64 class ids.
    """
    if logits.dim() != 3:
        raise ValueError(f"upsample_argmax expects K×h×w logits, got shape {tuple(logits.shape)}")
    _, h, w = logits.shape
    out_h, out_w = int(size[0]), int(size[1])
    # Edge-pad by one row / column so every cell (a, b) has corners (a|a+1, b|b+1).
    padded = F.pad(logits.float()[None], (0, 1, 0, 1), mode="replicate")[0]  # K×(h+1)×(w+1)
    tl, tr, bl, br = padded[:, :h, :w], padded[:, :h, 1:], padded[:, 1:, :w], padded[:, 1:, 1:]
    cell_max = torch.maximum(torch.maximum(tl, tr), torch.maximum(bl, br))  # K×h×w
    floor = torch.minimum(torch.minimum(tl, tr), torch.minimum(bl, br)).amax(0)  # h×w: the winner scores ≥ this
    candidate = cell_max >= floor  # K×h×w: classes that can win somewhere in the cell

    ys, y0, y1 = _linear_taps(h, out_h, logits.device)
    xs, x0, x1 = _linear_taps(w, out_w, logits.device)
    bounds = torch.searchsorted(ys, torch.arange(h + 1, device=ys.device))
    first_row, num_rows = bounds[:-1], bounds[1:] - bounds[:-1]  # output rows of each source cell row
    labels = torch.empty((out_h, out_w), dtype=torch.int64, device=logits.device)
    alive_anywhere = int(candidate.flatten(1).any(1).sum())
    cell_rows_per_block = max(1, min(block_rows, max_elements // (alive_anywhere * out_w)))
    for a0 in range(0, h, cell_rows_per_block):
        a1 = min(a0 + cell_rows_per_block, h)
        alive = candidate[:, a0:a1].flatten(1).any(1).nonzero()[:, 0]  # K' class ids, ascending
        p = padded[alive, a0:a1 + 1]  # K'×(rows+1)×(w+1)
        along_x = p[..., xs] * x0 + p[..., xs + 1] * x1  # K'×(rows+1)×W
        top, bottom = along_x[:, :-1], along_x[:, 1:]
        # Output row j of every source cell row at once: the cell rows are a broadcast dimension.
        for j in range(int(num_rows[a0:a1].max())):
            cells = (num_rows[a0:a1] > j).nonzero()[:, 0]  # cell rows (in the block) with a j-th output row
            rows = first_row[a0:a1][cells] + j
            t, b = (top, bottom) if len(cells) == a1 - a0 else (top[:, cells], bottom[:, cells])
            scores = t * y0[rows, None] + b * y1[rows, None]  # K'×cells×W
            labels[rows] = alive[scores.max(0).indices]  # the first maximum, as argmax (faster on CPU)
    return labels
