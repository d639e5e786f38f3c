"""The colour key every heatmap draws: its scale's two ends as numbers with a ramp of its palette between them.

A map scaled to its own maximum and one on a fixed range look alike; only the
printed ends tell a difference of ±0.004 from one of ±0.4.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from rich.segment import Segment
from rich.style import Style

from bertsecrets.tui import palette as palettes

#: Cells of the ramp: 9 keeps a diverging ramp's centre (0) a cell of its own.
RAMP = 9


def scale_number(value: float, signed: bool = False) -> str:
    """An end of a colour scale, short enough for a legend, exact enough to tell 0.004 from 0.04."""
    if value == 0 or abs(value) >= 0.001:
        text = f"{value:.3f}"
    else:
        text = f"{value:.0e}"
    return ("+" + text if signed and value > 0 else text).replace("-", "−")


def ramp_levels(palette: palettes.Palette, cells: int = RAMP) -> list[int]:
    """Levels of ``palette`` spread over ``cells``, both ends included."""
    return [int(round(x)) for x in np.linspace(0, palette.n - 1, cells)]


Format = Callable[[float], str]


def legend_text(palette: palettes.Palette, low: float, high: float, fmt: Format | None = None) -> tuple[str, str]:
    """The numbers at the two ends: low..high, or -high..+high for a diverging palette."""
    if fmt is not None:
        return (fmt(-abs(high)), fmt(abs(high))) if palette.diverging else (fmt(low), fmt(high))
    if palette.diverging:
        return scale_number(-abs(high)), scale_number(abs(high), signed=True)
    return scale_number(low), scale_number(high)


def legend_width(palette: palettes.Palette, low: float, high: float) -> int:
    left, right = legend_text(palette, low, high)
    return len(left) + 1 + RAMP + 1 + len(right)


def legend_segments(palette: palettes.Palette, low: float, high: float, base: Style,
                    fmt: Format | None = None, width: int | None = None) -> list[Segment]:
    """``low ▆▆▆▆▆▆▆▆▆ high`` in ``base`` style, the ramp drawn in the palette's own colours.

    In fewer than its usual cells (``width``) the ramp shrinks first, down to three cells, so the numbers stay whole.
    """
    left, right = legend_text(palette, low, high, fmt)
    cells = RAMP if width is None else max(3, min(RAMP, width - len(left) - len(right) - 2))
    segments = [Segment(left + " ", base)]
    segments += [Segment(" ", base + Style(bgcolor=palette.color(level))) for level in ramp_levels(palette, cells)]
    segments.append(Segment(" " + right, base))
    return segments
