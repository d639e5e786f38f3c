"""Matrices to terminal cells: resampling to a display size and half-block "▀" segments."""

from __future__ import annotations

import textwrap

import numpy as np
from rich.segment import Segment

from bertsecrets.tui.palette import Palette

HALF_BLOCK = "▀"


def message_lines(text: str, width: int) -> list[str]:
    """A message wrapped to ``width`` columns: what a Line-API widget shows in place of its data."""
    return textwrap.wrap(text, max(width, 8)) or [""]


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
    top = np.asarray(upper).tolist()  # plain ints: this loop runs for every line drawn
    n = len(top)
    bottom = [-1] * n if lower is None else np.asarray(lower).tolist()
    segments, start = [], 0
    for i in range(1, n + 1):
        if i == n or top[i] != top[start] or bottom[i] != bottom[start]:
            segments.append(Segment(HALF_BLOCK * (i - start), palette.half_block(top[start], bottom[start])))
            start = i
    return segments
