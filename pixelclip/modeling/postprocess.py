"""From low-resolution logits to image-size predictions.

``resize_logits`` gives K×H×W logit maps (Detectron2's ``sem_seg`` output). ``upsample_argmax``
gives the H×W arg-max labels of the same bilinear upsampling without building the K×H×W tensor:
evaluation only needs the labels, and upsampling 150 maps to 512×683 costs more than half of the
CLIP image encoder on a CPU.
"""
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


@contextmanager
def few_threads(device: torch.device):
    """Run a block of many mid-size CPU ops on one intra-op thread.

    Each CPU op on more than PyTorch's grain size runs as an OpenMP parallel region and waits for all
    its threads; on a busy machine (more runnable threads than cores) a descheduled thread makes every
    such op cost a scheduler time slice (e.g. ``upsample_argmax`` on 4 ADE images, load 9 on 2 cores:
    1.4 s with 2 threads, 0.15 s with 1). The work here is small, so one thread loses little when the
    machine is idle. No effect on other devices."""
    previous = torch.get_num_threads()
    if torch.device(device).type != "cpu" or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resize_logits(logits: List[torch.Tensor], sizes: List[Tuple[int, int]]) -> List[torch.Tensor]:
    """Bilinearly resize K×h×w logit maps to their images' sizes, one batched call per distinct
    (input size, output size) pair. Returns K×H×W maps in input order.

    The maps are resized in channels-last memory (H×W×K in memory): the CPU kernel is about twice as
    fast, and the per-pixel arg-max over K that evaluators take then reads contiguous memory."""
    out: List[Optional[torch.Tensor]] = [None] * len(logits)
    for (_, size), idx in _groups(logits, sizes).items():
        stacked = torch.stack([logits[i] for i in idx]).contiguous(memory_format=torch.channels_last)
        resized = F.interpolate(stacked, size=size, mode="bilinear", align_corners=False)
        for j, i in enumerate(idx):
            out[i] = resized[j]
    return out


def argmax_labels(logits: Sequence[torch.Tensor], sizes: List[Tuple[int, int]]) -> List[torch.Tensor]:
    """``resize_logits(...)[i].argmax(0)`` for every image (H×W int64), without the K×H×W maps:
    ``upsample_argmax`` on one batch per distinct (input size, output size) pair. ``logits``: K×h×w
    maps, or a B×K×h×w tensor (used as it is when all its images go to one size)."""
    out: List[Optional[torch.Tensor]] = [None] * len(logits)
    for (_, size), idx in _groups(logits, sizes).items():
        whole = isinstance(logits, torch.Tensor) and len(idx) == len(logits)
        labels = upsample_argmax(logits if whole else torch.stack([logits[i] for i in idx]), size)
        for j, i in enumerate(idx):
            out[i] = labels[j]
    return out


def _groups(logits: Sequence[torch.Tensor], sizes: Sequence[Tuple[int, int]]) -> Dict[tuple, List[int]]:
    groups: Dict[tuple, List[int]] = {}
    for i, (lg, size) in enumerate(zip(logits, sizes)):
        groups.setdefault((tuple(lg.shape[-2:]), tuple(int(s) for s in size)), []).append(i)
    return groups


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


def _cell_spans(index: torch.Tensor, num_cells: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """First output position and number of output positions of every source cell (``index`` is the
    non-decreasing left tap of each output position)."""
    bounds = torch.searchsorted(index, torch.arange(num_cells + 1, device=index.device))
    return bounds[:-1], bounds[1:] - bounds[:-1]


class _Grid:
    """Taps, weights and cell spans of one (h, w) -> (H, W) bilinear resize."""

    def __init__(self, h: int, w: int, out_h: int, out_w: int, device):
        self.out_h, self.out_w = out_h, out_w
        self.ys, self.wy0, self.wy1 = _linear_taps(h, out_h, device)
        self.xs, self.wx0, self.wx1 = _linear_taps(w, out_w, device)
        self.row0, self.num_rows = _cell_spans(self.ys, h)
        self.col0, self.num_cols = _cell_spans(self.xs, w)


# Relative costs on a CPU (measured on tools/benchmark.py's shapes), in units of scoring one class at
# one pixel in the dense path: pruning one class of one cell, scoring one candidate at one pixel in
# the sparse path.
_PRUNE_COST, _SPARSE_COST = 2, 3


def upsample_argmax(logits: torch.Tensor, size: Tuple[int, int], method: str = "auto",
                    max_elements: int = 1 << 22) -> torch.Tensor:
    """``F.interpolate(logits, size, mode="bilinear", align_corners=False).argmax(1)`` without the
    B×K×H×W tensor (also for one K×h×w map -> H×W).

    A bilinear sample is a convex combination of the 4 corners of its source cell. So, exactly:
    where one class has the largest score at all 4 corners, it wins the whole cell (almost every
    cell of real predictions: one gather for all of them); and a class that another class beats at
    all 4 corners wins nowhere in the cell (ties go to the lower class id, as ``argmax``). In the
    other cells only the classes left are interpolated, with PyTorch's taps and weights. The cost
    depends on how many cells hold a label boundary, not on how close the scores are (scaling or
    shifting a pixel's scores changes nothing). An image for which this would cost more than
    interpolating every class (e.g. noise without spatial structure) takes the dense path instead:
    every class interpolated in blocks of rows (along x by PyTorch's kernel, then along y), cheaper
    than the B×K×H×W tensor and with bounded memory. Labels can differ from the full path only where
    two classes tie at float precision (PyTorch's contiguous and channels-last kernels differ there too).

    Args:
        logits: B×K×h×w (or K×h×w) scores (float).
        size: (H, W) of the output.
        method: ``auto``; ``sparse`` or ``dense`` force one path (tests).
        max_elements: the largest block of intermediate values held at once (bounds memory).

    Returns:
        B×H×W (or H×W) int64 class ids.
    """
    if logits.dim() not in (3, 4):
        raise ValueError(f"upsample_argmax expects B×K×h×w or K×h×w logits, got shape {tuple(logits.shape)}")
    if method not in ("auto", "sparse", "dense"):
        raise ValueError(f"method must be 'auto', 'sparse' or 'dense', got '{method}'")
    if logits.dim() == 3:
        return upsample_argmax(logits[None], size, method, max_elements)[0]
    x = logits.float()
    grid = _Grid(x.shape[-2], x.shape[-1], int(size[0]), int(size[1]), x.device)
    with few_threads(x.device):  # many mid-size ops
        labels, dense = _cells_argmax(x, grid, method, max_elements)
    if dense.any():  # a few large ops, on every thread
        idx = dense.nonzero()[:, 0]
        labels[idx] = _dense_argmax(x[idx], grid, max_elements)
    return labels


def _cells_argmax(x: torch.Tensor, grid: _Grid, method: str, max_elements: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Labels B×H×W of B×K×h×w float32 scores, exact except in the images left to the dense path
    (returned as a B bool mask)."""
    b, k, h, w = x.shape
    # Edge-pad by one row / column so every cell (a, c) has corners (a|a+1, c|c+1); classes innermost.
    corners = F.pad(x, (0, 1, 0, 1), mode="replicate").permute(0, 2, 3, 1).contiguous()  # B×(h+1)×(w+1)×K
    winner = corners.max(-1).indices  # B×(h+1)×(w+1): the first maximum, as argmax (faster on CPU)
    # exact wherever the cell's 4 corners agree; gather with a broadcast index: about 4× faster on a CPU
    # than advanced indexing along the last dimension
    labels = torch.gather(winner[:, grid.ys], 2, grid.xs.expand(b, grid.out_h, grid.out_w))
    tl = winner[:, :-1, :-1]
    area = grid.num_rows[:, None] * grid.num_cols[None, :]  # h×w: output pixels of each cell
    mixed = ((tl != winner[:, :-1, 1:]) | (tl != winner[:, 1:, :-1]) | (tl != winner[:, 1:, 1:])) & (area > 0)
    dense_cost = k * grid.out_h * grid.out_w  # per image, in units of one class scored at one pixel
    if method == "auto":  # the cheapest the sparse path could be: prune, then 2 candidates per mixed cell
        floor = _PRUNE_COST * k * mixed.flatten(1).sum(1) + _SPARSE_COST * 2 * (mixed * area).flatten(1).sum(1)
        dense = floor > dense_cost
    else:
        dense = torch.full((b,), method == "dense", dtype=torch.bool, device=x.device)
    cells = (mixed & ~dense[:, None, None]).nonzero()  # n×3: image, cell row, cell column
    if len(cells):
        candidate = _candidates(corners, cells, max_elements)  # n×K
        if method == "auto":  # the sparse path's cost with the candidates found
            cost = torch.zeros(b, dtype=torch.int64, device=x.device)
            cost.index_add_(0, cells[:, 0], _bucket(candidate.sum(1)) * area[cells[:, 1], cells[:, 2]])
            dense |= _SPARSE_COST * cost > dense_cost
            keep = ~dense[cells[:, 0]]
            cells, candidate = cells[keep], candidate[keep]
        _sparse_argmax(corners, cells, candidate, grid, labels, max_elements)
    return labels, dense


def _bucket(count: torch.Tensor) -> torch.Tensor:
    """The smallest power of two ≥ count (≥ 1)."""
    return count.clamp_min(1).float().log2().ceil().exp2().long()


def _corner_index(shape: torch.Size, cells: torch.Tensor) -> torch.Tensor:
    """Rows of the B·(h+1)·(w+1)×K corner table holding the 4 corners of each cell -> n×4."""
    _, hp, wp, _ = shape
    top_left = (cells[:, 0] * hp + cells[:, 1]) * wp + cells[:, 2]
    return torch.stack([top_left, top_left + 1, top_left + wp, top_left + wp + 1], 1)


def _candidates(corners: torch.Tensor, cells: torch.Tensor, max_elements: int) -> torch.Tensor:
    """The classes that can win somewhere in each cell -> n×K bool.

    A class is dropped when the class with the largest smallest corner beats it at all 4 corners:
    then it beats it at every point of the cell. (On real predictions this leaves 2 classes in most
    mixed cells; testing each corner's winner as well removes few more, at 5 times the cost.)"""
    k = corners.shape[-1]
    flat = corners.view(-1, k)
    index = _corner_index(corners.shape, cells)
    class_ids = torch.arange(k, device=corners.device)
    out = torch.empty((len(cells), k), dtype=torch.bool, device=corners.device)
    chunk = max(1, max_elements // (4 * k))  # bounds the n×4×K differences
    for c0 in range(0, len(cells), chunk):
        values = flat[index[c0:c0 + chunk]]  # n×4×K: the scores at the cell's corners
        best = values.amin(1).max(1, keepdim=True).indices  # n×1: the largest smallest corner
        # margin: by how much ``best`` beats each class at its worst corner (a float difference has the exact sign)
        margin = (values.gather(2, best[:, None, :].expand(-1, 4, -1)) - values).amin(1)  # n×K
        # best beats k everywhere: best > k at every corner, or best ≥ k and best wins ties (the lower id).
        out[c0:c0 + chunk] = ~((margin > 0) | ((margin == 0) & (best < class_ids)))
    return out


def _sparse_argmax(corners: torch.Tensor, cells: torch.Tensor, candidate: torch.Tensor, grid: _Grid,
                   labels: torch.Tensor, max_elements: int) -> None:
    """Labels of the output pixels of the given cells (n×3: image, cell row, cell column), scoring only
    their candidate classes (n×K bool), written into ``labels`` (B×H×W)."""
    k = corners.shape[-1]
    flat = corners.view(-1, k)
    count = candidate.sum(1)
    bucket = _bucket(count)
    for m in bucket.unique().tolist():
        sel = (bucket == m).nonzero()[:, 0]
        m = min(m, k)
        # The candidates' ids, ascending, in the first ``count`` columns (the others go to a spare column),
        # padded with the largest: duplicates of one class change no arg-max.
        cand = candidate[sel]
        slot = torch.where(cand, cand.cumsum(1) - 1, k)
        ids = torch.full((len(sel), k + 1), -1, dtype=torch.int64, device=corners.device)
        ids.scatter_(1, slot, torch.arange(k, device=corners.device).expand(len(sel), -1))
        ids = ids[:, :m]
        ids = torch.where(ids >= 0, ids, ids.gather(1, count[sel, None] - 1))
        index = _corner_index(corners.shape, cells[sel]) * k  # n×4: offsets of the corners' score rows
        values = flat.view(-1)[index[:, :, None] + ids[:, None, :]]  # n×4×M: the candidates' corner scores
        _evaluate_cells(values, ids, cells[sel], grid, labels, max_elements)


def _evaluate_cells(values: torch.Tensor, ids: torch.Tensor, cells: torch.Tensor, grid: _Grid,
                    labels: torch.Tensor, max_elements: int) -> None:
    """Bilinear scores of M candidate classes (ids n×M ascending, corner values n×4×M) at every output
    pixel of n cells; the arg-max (the first, so the lower id on ties) is written into ``labels``."""
    rows_n, cols_n = grid.num_rows[cells[:, 1]], grid.num_cols[cells[:, 2]]
    r, c = int(rows_n.max()), int(cols_n.max())
    step = max(1, max_elements // (ids.shape[1] * r * c))
    # Cells with fewer than r rows (c columns) repeat their last one: the same pixel, the same label.
    offsets_r, offsets_c = torch.arange(r, device=ids.device), torch.arange(c, device=ids.device)
    rows = grid.row0[cells[:, 1], None] + torch.minimum(offsets_r, rows_n[:, None] - 1)  # n×R
    cols = grid.col0[cells[:, 2], None] + torch.minimum(offsets_c, cols_n[:, None] - 1)  # n×C
    pixel = (cells[:, 0, None, None] * grid.out_h + rows[:, :, None]) * grid.out_w + cols[:, None, :]  # n×R×C
    for s0 in range(0, len(cells), step):
        v, cid, row, col = values[s0:s0 + step], ids[s0:s0 + step], rows[s0:s0 + step], cols[s0:s0 + step]
        if cid.shape[1] == 2:  # most cells: the sign of the interpolated difference (ids[0] < ids[1] wins ties)
            v = (v[:, :, :1] - v[:, :, 1:])  # n×4×1
        wx0, wx1 = grid.wx0[col][:, None], grid.wx1[col][:, None]  # n×1×C
        top = v[:, 0, :, None] * wx0 + v[:, 1, :, None] * wx1  # n×M×C
        bottom = v[:, 2, :, None] * wx0 + v[:, 3, :, None] * wx1
        scores = top[:, :, None] * grid.wy0[row][:, None, :, None] + bottom[:, :, None] * grid.wy1[row][:, None, :, None]
        if cid.shape[1] == 2:
            won = torch.where(scores[:, 0] >= 0, cid[:, :1, None], cid[:, 1:, None])  # n×R×C
        else:
            won = cid.gather(1, scores.max(1).indices.flatten(1))  # n×(R·C): the first maximum
        labels.view(-1)[pixel[s0:s0 + step].flatten()] = won.flatten()


def _dense_argmax(x: torch.Tensor, grid: _Grid, max_elements: int) -> torch.Tensor:
    """Arg-max of the bilinear upsampling of every class of B×K×h×w scores, a block of source rows at
    a time: along x by PyTorch's kernel (the same taps and weights), then along y. -> B×H×W."""
    b, k, h, _ = x.shape
    out_w = grid.out_w
    padded = F.pad(x, (0, 0, 0, 1), mode="replicate")  # B×K×(h+1)×w: the edge row for the last cell row
    labels = torch.empty((b, grid.out_h, out_w), dtype=torch.int64, device=x.device)
    block = max(1, min(h, max_elements // (b * k * out_w) - 1))  # cell rows per block
    for a0 in range(0, h, block):
        a1 = min(a0 + block, h)
        src = padded[:, :, a0:a1 + 1].contiguous(memory_format=torch.channels_last)
        # Same number of rows: PyTorch copies them (weights 1, 0); columns get its bilinear weights.
        along_x = F.interpolate(src, size=(a1 + 1 - a0, out_w), mode="bilinear", align_corners=False)
        along_x = along_x.permute(0, 2, 3, 1)  # B×(rows+1)×W×K, classes innermost
        num_rows, row0 = grid.num_rows[a0:a1], grid.row0[a0:a1]
        # Output row j of every cell row of the block at once: the cell rows are a broadcast dimension.
        for j in range(int(num_rows.max())):
            sel = (num_rows > j).nonzero()[:, 0]
            rows = row0[sel] + j
            full = len(sel) == a1 - a0
            top = along_x[:, :-1] if full else along_x[:, sel]
            bottom = along_x[:, 1:] if full else along_x[:, sel + 1]
            scores = torch.lerp(top, bottom, grid.wy1[rows, None, None])  # B×n×W×K
            labels[:, rows] = scores.max(-1).indices  # the first maximum, as argmax (faster on CPU)
    return labels
