"""Strip geometry for running P-Net over a tall pyramid level in pieces that join into the whole map."""

from __future__ import annotations

import itertools

import pytest

from lfr.vision.detectors.mtcnn import PNET_CELL, PNET_STRIP_ROWS, pnet_rows, pnet_strips


@pytest.mark.parametrize("height", [12, 13, 14, 41, 42, 100, 163, 230, 324, 325])
def test_strips_cover_every_output_row_once(height: int) -> None:
    strips = pnet_strips(height, PNET_STRIP_ROWS)
    total = pnet_rows(height)
    assert total >= 1
    assert strips[0][0] == 0 and strips[-1][1] == total
    for (_, o1, _, _), (o0, _, _, _) in itertools.pairwise(strips):
        assert o1 == o0  # contiguous, no gaps or overlaps in the output map
    for o0, o1, i0, i1 in strips:
        assert i0 == 2 * o0 and i0 % 2 == 0  # pooling pairs line up with the whole level's
        assert i1 <= height
        # The strip's own output is at least the rows it contributes (the last one exactly reaches the end).
        assert pnet_rows(i1 - i0) >= o1 - o0
        assert i1 - i0 >= PNET_CELL


def test_output_rows_formula() -> None:
    # 3x3 valid conv, 2x2 stride-2 SAME pool, two 3x3 valid convs: a 12 px window gives one row.
    assert [pnet_rows(h) for h in (12, 13, 14, 15, 324)] == [1, 2, 2, 3, 157]
