"""Colour maps for heatmaps: exact xterm-256 indices, or smooth truecolor ramps through the same anchors.

Over SSH ``COLORTERM`` is usually lost and Rich maps any RGB colour to the
nearest xterm-256 entry, which turns a smooth colour map into a few uneven
steps. So in 256-colour terminals every level is an xterm index chosen by hand:
the sequential ramp follows magma (dark blue, purple, red, orange, pale yellow)
with CIELAB lightness strictly rising; the diverging ramp grows from a dark
grey centre to bright blue (negative) and bright orange (positive). Each
index's RGB survives Textual's and Rich's round trip (RGB back to the same
index), which a test checks. With truecolor the ramps are interpolated through
the same anchors, so both look alike. Nothing depends on colour alone: the
screens always print the number under the cursor.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich._palettes import EIGHT_BIT_PALETTE
from rich.color import Color
from rich.style import Style

#: xterm indices, dark to bright (CIELAB L* from 2 to 99).
SEQUENTIAL_256 = (232, 17, 18, 53, 54, 90, 126, 162, 132, 167, 203, 209, 180, 216, 223, 230)
#: Negative side (bright blue) through the centre (dark grey) to the positive side (bright orange).
DIVERGING_256 = (87, 45, 38, 32, 26, 20, 19, 18, 235, 52, 88, 124, 160, 196, 202, 208, 214)
#: One colour per pattern class, in store.labels.PATTERN_CLASSES order.
CLASSES_256 = (33, 178, 71, 170, 244)
#: Marks the cell under the cursor: absent from the ramps above.
CURSOR_SEQUENTIAL = 46  # bright green
CURSOR_DIVERGING = 231  # white
#: Levels a truecolor ramp is interpolated to: enough that steps are invisible, and odd,
#: so that the diverging ramp's centre anchor is a level of its own.
TRUECOLOR_LEVELS = 65


def xterm_rgb(index: int) -> tuple[int, int, int]:
    triplet = EIGHT_BIT_PALETTE[index]
    return (triplet.red, triplet.green, triplet.blue)


def _interpolate(anchors: list[tuple[int, int, int]], n: int) -> list[tuple[int, int, int]]:
    rgb = np.asarray(anchors, dtype=float)
    where = np.linspace(0, len(anchors) - 1, n)
    out = np.stack([np.interp(where, np.arange(len(anchors)), rgb[:, c]) for c in range(3)], axis=1)
    return [tuple(int(round(v)) for v in row) for row in out]


class Palette:
    """Levels of one colour map in one colour system; maps values to level indices and styles."""

    def __init__(self, rgb: list[tuple[int, int, int]], cursor: tuple[int, int, int], diverging: bool = False) -> None:
        self.colors = tuple(Color.from_rgb(*c) for c in rgb)
        self.cursor = Color.from_rgb(*cursor)
        self.diverging = diverging
        self._styles: dict = {}

    @property
    def n(self) -> int:
        return len(self.colors)

    def levels(self, values: np.ndarray, low: float, high: float) -> np.ndarray:
        """Level index per value (int16); NaN becomes -1 (drawn as empty).

        Sequential: ``low`` maps to level 0 and ``high`` to the top level.
        Diverging: 0 maps to the centre and +-``high`` to the ends (``low`` unused).
        """
        values = np.asarray(values, dtype=np.float64)
        if self.diverging:
            span = high if high > 0 else 1.0
            t = (np.clip(values / span, -1, 1) + 1) / 2
        else:
            span = high - low if high > low else 1.0
            t = np.clip((values - low) / span, 0, 1)
        missing = np.isnan(t)
        out = np.minimum((np.where(missing, 0, t) * self.n).astype(np.int16), self.n - 1)
        out[missing] = -1
        return out

    def color(self, level: int) -> Color | None:
        return None if level < 0 else self.cursor if level == self.n else self.colors[level]

    def half_block(self, upper: int, lower: int) -> Style:
        """The style of "▀" whose top half shows level ``upper`` and bottom half ``lower``.

        Level ``n`` is the cursor colour; -1 is empty (the widget's background).
        """
        key = (upper, lower)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = Style(color=self.color(upper), bgcolor=self.color(lower))
        return style

    def cell(self, level: int) -> Style:
        """A whole cell of level ``level`` with a readable text colour on it."""
        key = ("cell", level)
        style = self._styles.get(key)
        if style is None:
            bg = self.color(level)
            if bg is None:
                style = Style()
            else:
                r, g, b = bg.get_truecolor()
                light = 0.2126 * r + 0.7152 * g + 0.0722 * b > 110
                style = Style(bgcolor=bg, color=Color.from_rgb(0, 0, 0) if light else Color.from_rgb(255, 255, 255))
            self._styles[key] = style
        return style


def _palette(indices: tuple[int, ...], cursor: int, truecolor: bool, diverging: bool) -> Palette:
    # 256 colours: each index's own RGB, which Rich maps back to the same index.
    anchors = [xterm_rgb(i) for i in indices]
    return Palette(_interpolate(anchors, TRUECOLOR_LEVELS) if truecolor else anchors, xterm_rgb(cursor), diverging)


@lru_cache(maxsize=None)
def sequential(truecolor: bool) -> Palette:
    return _palette(SEQUENTIAL_256, CURSOR_SEQUENTIAL, truecolor, diverging=False)


@lru_cache(maxsize=None)
def diverging(truecolor: bool) -> Palette:
    return _palette(DIVERGING_256, CURSOR_DIVERGING, truecolor, diverging=True)


@lru_cache(maxsize=None)
def classes() -> Palette:
    """Categorical colours of the pattern classes (the same in every colour system)."""
    return Palette([xterm_rgb(i) for i in CLASSES_256], xterm_rgb(CURSOR_DIVERGING))


def is_truecolor(color_system: str | None) -> bool:
    """Whether a Rich colour system name ("truecolor", "256", "standard", ...) has 24-bit colour."""
    return color_system == "truecolor"


def app_truecolor(app) -> bool:
    """Whether ``app`` draws in truecolor: its own ``truecolor`` setting if it has one, else its console's."""
    setting = getattr(app, "truecolor", None)
    return is_truecolor(app.console.color_system) if setting is None else bool(setting)
