"""Colour scales of differences: fitted to the largest difference either way, or a symmetric range fixed by the user.

Auto-scaled, a difference of ±0.004 looks as loud as one of ±0.4; with the
range fixed, the same colour means the same difference on every head, input and
screen visit. `<` and `>` fix the range (first at the step nearest to the
auto-scaled one) and make it smaller or larger; on the grids `0` fits it to the
data again (on the map, `c` does).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from textual.binding import Binding

from bertsecrets.tui.stats import Grid

if TYPE_CHECKING:
    from bertsecrets.tui.widgets.grid import HeadGrid

#: The fixed ranges `<` and `>` step through: ±SPAN, in the unit of the values (attention, or metric fractions).
SPANS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

#: The keys of a screen with a grid of differences.
RANGE_BINDINGS = [
    Binding("less_than_sign", "span(-1)", "smaller fixed range", show=False,
            tooltip="fix the colour range of differences (±), or make it smaller"),
    Binding("greater_than_sign", "span(1)", "larger fixed range", show=False,
            tooltip="fix the colour range of differences (±), or make it larger"),
    Binding("0", "auto_span", "fitted range", show=False,
            tooltip="colour differences from their own largest value again"),
]


def nearest(span: float) -> int:
    """The index of the step of SPANS nearest to ``span`` (on a log scale: 0.03 is nearer 0.02 than 0.05)."""
    ratios = [max(s, span) / max(min(s, span), 1e-12) for s in SPANS]
    return ratios.index(min(ratios))


def stepped(span: float | None, fitted: float, step: int) -> float:
    """The fixed range after `<` (``step`` -1) or `>` (+1).

    From the fitted (auto) scale, the first press fixes the step nearest to
    ``fitted`` without moving; later presses move one step, stopping at the ends.
    """
    if span is None:
        return SPANS[nearest(fitted)]
    return SPANS[min(max(nearest(span) + step, 0), len(SPANS) - 1)]


def fixed(grid: Grid, span: float | None) -> Grid:
    """``grid`` on the range ±``span`` when it is a grid of differences and a range is fixed; else as it is."""
    if grid.kind != "div" or span is None:
        return grid
    return dataclasses.replace(grid, low=-span, high=span)


def range_words(grid: Grid, span: float | None) -> str:
    """How a grid of differences is coloured, with the key that changes it, short enough for a border.

    "fitted (< >)": to its own largest difference, `<` or `>` fixes it; "fixed ±5.0 (0)": `0` fits it again.
    """
    if grid.kind != "div":
        return ""
    if span is None:
        return "fitted (< >)"
    return f"fixed ±{grid.fmt(span).lstrip('+')} (0)"


class FixedRange:
    """The actions of a screen whose grids of differences can be put on a fixed range.

    ``span`` is the fixed range (None: fitted). The screen lists RANGE_BINDINGS in
    its BINDINGS and has ``fitted_span()`` (the fitted range of the grid of
    differences shown now, or None when it shows none) and ``draw_range()`` (draws
    its grids again).
    """

    span: float | None = None

    def action_span(self, step: int) -> None:
        fitted = self.fitted_span()
        if fitted is None:  # no grid of differences on screen: nothing to fix
            return
        self.span = stepped(self.span, fitted, step)
        self.draw_range()

    def action_auto_span(self) -> None:
        self.span = None
        self.draw_range()

    def show_on_range(self, widget: HeadGrid, grid: Grid) -> Grid:
        """Show ``grid`` in ``widget`` on the fixed range if one is set, how it is coloured in the widget's border,
        the cursor on the selected head; the grid as shown."""
        grid = fixed(grid, self.span)
        widget.border_subtitle = range_words(grid, self.span)
        widget.show(grid)
        widget.move_cursor(self.selection.layer, self.selection.head, announce=False)
        return grid
