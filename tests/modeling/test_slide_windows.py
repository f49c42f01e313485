"""Sliding-window inference (``PixelCLIP._slide_logits``) on image sizes that leave a remainder: the
window origins against a hand-written list (the last row / column of windows flush with the image's
edge), every logit covered, and each logit the mean of the windows covering it.

The scorer is a stub: each window's logits are constant maps holding 1, the window's top and its left
(read from an image whose channels 0 / 1 hold each pixel's row / column), so dropping, duplicating or
misplacing a window changes the result."""
from types import SimpleNamespace

import pytest
import torch

from pixelclip.modeling.pixelclip import PixelCLIP

# CLIP_RESOLUTION (64, 48), SLIDE_OVERLAP 0.25: strides int(64 · 0.75) = 48 and int(48 · 0.75) = 36;
# FEATURE_RESOLUTION 16: logits at 1/4 of the pixels, 16×12 per window.
WINDOW, OVERLAP, RESOLUTION = (64, 48), 0.25, 16

CASES = [
    # (H, W), window tops, window lefts
    ((120, 100), [0, 48, 56], [0, 36, 52]),  # remainders on both axes: last windows at H - 64, W - 48
    ((112, 120), [0, 48], [0, 36, 72]),  # no remainder: the last window is the last stride
    ((40, 48), [0], [0]),  # smaller than a window (padded)
    ((64, 200), [0], [0, 36, 72, 108, 144, 152]),  # one row, a remainder of 8 columns
]


def _slide(h, w, record):
    image = torch.zeros(3, h, w)
    image[0] = torch.arange(h, dtype=torch.float32)[:, None]  # each pixel's row
    image[1] = torch.arange(w, dtype=torch.float32)[None, :]  # and column

    def score(crops, text):  # N×3×64×48 -> N×3×16×16 constant maps: 1, top, left
        tops, lefts = crops[:, 0, 0, 0], crops[:, 1, 0, 0]
        record.extend(zip(tops.long().tolist(), lefts.long().tolist()))
        values = torch.stack([torch.ones_like(tops), tops, lefts], 1)
        return values[:, :, None, None].expand(-1, -1, RESOLUTION, RESOLUTION).clone()

    model = SimpleNamespace(clip_resolution=WINDOW, slide_overlap=OVERLAP, test_feature_resolution=RESOLUTION,
                            _score=score)
    return PixelCLIP._slide_logits(model, image, torch.zeros(3, 8))  # text: K = 3 classes


@pytest.mark.parametrize("size,tops,lefts", CASES, ids=[f"{h}x{w}" for (h, w), _, _ in CASES])
def test_windows_cover_every_pixel_up_to_the_last_row_and_column(size, tops, lefts):
    h, w = size
    record = []
    out = _slide(h, w, record)
    assert sorted(record) == sorted((y, x) for y in tops for x in lefts)
    assert out.shape == (3, h // 4, w // 4)
    # by hand: each logit cell (i, j) is the mean over the windows whose 16×12 cells cover it
    expected = torch.zeros(3, h // 4, w // 4)
    for i in range(h // 4):
        for j in range(w // 4):
            covering = [(y, x) for y in tops for x in lefts if y // 4 <= i < y // 4 + 16 and x // 4 <= j < x // 4 + 12]
            assert covering, (i, j)
            expected[:, i, j] = torch.tensor([1.0, sum(y for y, _ in covering) / len(covering),
                                              sum(x for _, x in covering) / len(covering)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert (out[0] == 1).all()  # every cell covered (an uncovered one would be 0)
    # the last row and column of cells come from windows flush with the image's bottom / right edge
    assert out[1, -1].max() == max(tops) and out[2, :, -1].max() == max(lefts)


def test_window_origins_off_the_logit_grid_go_to_the_nearest_cell():
    """123×100: window tops 0, 48, 59 and lefts 0, 36, 52, i.e. 0, 12, 14.75 and 0, 9, 13 logit cells. The last
    row of windows starts at the nearest cell, 15, and covers cells 15..30: all 31 rows (round(123 / 4)) of the
    output, the last one from that window alone."""
    record = []
    out = _slide(123, 100, record)
    assert sorted(record) == sorted((y, x) for y in (0, 48, 59) for x in (0, 36, 52))
    assert out.shape == (3, 31, 25)
    cell = {0: 0, 48: 12, 59: 15, 36: 9, 52: 13}  # pixel origin -> nearest logit cell, by hand
    expected = torch.zeros(3, 31, 25)
    for i in range(31):
        for j in range(25):
            covering = [(y, x) for y in (0, 48, 59) for x in (0, 36, 52)
                        if cell[y] <= i < cell[y] + 16 and cell[x] <= j < cell[x] + 12]
            expected[:, i, j] = torch.tensor([1.0, sum(y for y, _ in covering) / len(covering),
                                              sum(x for _, x in covering) / len(covering)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert out[1, 30].unique().tolist() == [59.0]


def test_a_non_square_window_resizes_its_logits_bilinearly():
    """A 64×48 window scores 16×16 logits; on the 1/4 grid it spans 16×12 cells, so its logits are resized along x
    (bilinear, half-pixel centres: cell j samples column (j + 0.5) · 16 / 12 - 0.5 of the window's logits). A
    ramp holding each logit's column is resized to exactly that position; its rows are left as they are."""
    image = torch.zeros(3, 64, 48)

    def score(crops, text):  # N×K×16×16: class 0 holds the column index, class 1 the row index
        ramp = torch.arange(RESOLUTION, dtype=torch.float32)
        return torch.stack([ramp[None, :].expand(RESOLUTION, -1), ramp[:, None].expand(-1, RESOLUTION)])[None]

    model = SimpleNamespace(clip_resolution=WINDOW, slide_overlap=OVERLAP, test_feature_resolution=RESOLUTION,
                            _score=score)
    out = PixelCLIP._slide_logits(model, image, torch.zeros(2, 8))
    assert out.shape == (2, 16, 12)
    columns = torch.tensor([(j + 0.5) * 16 / 12 - 0.5 for j in range(12)])
    torch.testing.assert_close(out[0], columns[None, :].expand(16, -1), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], torch.arange(16.0)[:, None].expand(-1, 12), rtol=0, atol=1e-5)
