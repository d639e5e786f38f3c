"""Matrices to terminal cells: resampling to a display size and half-block "▀" segments."""

from __future__ import annotations

import numpy as np
from rich.segment import Segment

from bertsecrets_tui.palette import Palette

HALF_BLOCK = "▀"


def bins(n: int, size: int) -> np.ndarray:
    """The display cell (0..size-1) of each of ``n`` matrix rows when shown in ``size`` cells."""
    return (np.arange(n) * size // max(n, 1)).astype(np.int64)


def resample(matrix: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``matrix[..., R, C]`` shown as ``rows`` x ``cols`` cells: repeated when enlarged, max-pooled when shrunk.

    Max, not mean, so that a single strong column ([CLS], [SEP]) or an
    off-by-one diagonal stays as bright when pooled as it is in the full map.
    """
    out = np.asarray(matrix)
    for axis, size in ((-2, rows), (-1, cols)):
        n = out.shape[axis]
        if size >= n:
            out = np.take(out, np.arange(size) * n // size, axis=axis)
        else:
            starts = np.searchsorted(bins(n, size), np.arange(size))
            out = np.maximum.reduceat(out, starts, axis=axis)
    return out


def half_block_segments(upper: np.ndarray, lower: np.ndarray | None, palette: Palette) -> list[Segment]:
    """One terminal line showing two rows of palette levels: "▀" with fg = upper, bg = lower.

    Neighbouring cells with the same pair of levels share one segment.
    """
    upper = np.asarray(upper, dtype=np.int64)
    lower = np.full_like(upper, -1) if lower is None else np.asarray(lower, dtype=np.int64)
    if upper.size == 0:
        return []
    pairs = (upper + 1) * 1024 + (lower + 1)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(pairs)) + 1))
    ends = np.append(starts[1:], upper.size)
    return [
        Segment(HALF_BLOCK * int(end - start), palette.half_block(int(upper[start]), int(lower[start])))
        for start, end in zip(starts, ends)
    ]
