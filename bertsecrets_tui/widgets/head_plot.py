"""The heads of a run as points of their 2-D embedding on a character canvas, with a cursor on one head."""

from __future__ import annotations

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from bertsecrets.tui import families as fam
from bertsecrets.tui import palette as palettes

POINT, CURSOR = "●", "◆"


class HeadPlot(Widget, can_focus=True):
    """Heads as points coloured by family (or a number); arrows go to the nearest head that way, Tab to the next."""

    BINDINGS = [
        *(Binding(key, f"move('{key}')", key, show=False) for key in fam.DIRECTIONS),
        Binding("tab", "step(1)", "next head", show=False),
        Binding("shift+tab", "step(-1)", "previous head", show=False),
        Binding("enter", "choose", "open head", show=False),
    ]

    class Moved(Message):
        """The cursor is on another head (0-indexed layer and head)."""

        def __init__(self, plot: "HeadPlot", layer: int, head: int) -> None:
            super().__init__()
            self.plot, self.layer, self.head = plot, layer, head

        @property
        def control(self) -> "HeadPlot":
            return self.plot

    class Chosen(Moved):
        """Enter on the cursor's head: open it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: fam.RoleFamilies | None = None
        self.values: np.ndarray | None = None  # colour by these numbers instead of the family
        self.message = "loading..."
        self.index = 0

    def show(self, points: fam.RoleFamilies, values: np.ndarray | None, index: int) -> None:
        self.points, self.values, self.message = points, values, ""
        self.index = min(max(index, 0), len(points) - 1)
        self.refresh()

    def show_message(self, text: str) -> None:
        self.points, self.message = None, text
        self.refresh()

    def _cells(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.points is not None
        return fam.cells(self.points.x, self.points.y, self.size.width, self.size.height)

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if self.points is None or not len(self.points) or width < 3 or height < 3:
            return Text(self.message)  # a message from the store, shown as written
        col, row = self._cells()
        grid: list[list[tuple[str, Style | None]]] = [[(" ", None)] * width for _ in range(height)]
        styles = self._styles()
        order = [i for i in range(len(col)) if i != self.index] + [self.index]  # the cursor drawn last, on top
        for i in order:
            glyph = CURSOR if i == self.index else POINT
            style = styles[i] + (Style(reverse=True, bold=True) if i == self.index else Style())
            grid[row[i]][col[i]] = (glyph, style)
        text = Text()
        for y, line in enumerate(grid):
            for glyph, style in line:
                text.append(glyph, style)
            if y < height - 1:
                text.append("\n")
        return text

    def _styles(self) -> list[Style]:
        assert self.points is not None
        if self.values is None:
            return [Style(color=f"color({fam.family_colour(int(f))})") for f in self.points.family]
        palette = palettes.sequential(palettes.app_truecolor(self.app))
        finite = self.values[np.isfinite(self.values)]
        low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        levels = palette.levels(np.nan_to_num(self.values, nan=low), low, high if high > low else low + 1)
        return [Style(color=palette.color(int(v))) for v in levels]

    def _announce(self, chosen: bool = False) -> None:
        if self.points is not None:
            cls = self.Chosen if chosen else self.Moved
            self.post_message(cls(self, int(self.points.layer[self.index]), int(self.points.head[self.index])))

    def action_move(self, direction: str) -> None:
        if self.points is None:
            return
        col, row = self._cells()
        found = fam.nearest(col, row, self.index, direction)
        if found != self.index:
            self.index = found
            self.refresh()
            self._announce()

    def action_step(self, step: int) -> None:
        if self.points is not None:
            self.index = (self.index + step) % len(self.points)
            self.refresh()
            self._announce()

    def action_choose(self) -> None:
        self._announce(chosen=True)
