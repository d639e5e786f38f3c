"""A layers x heads grid: one coloured cell per head with its value, a cursor on one head, a colour legend below."""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from textual import events
from textual.geometry import Size
from textual.strip import Strip

from bertsecrets.tui import palette as palettes
from bertsecrets.tui.raster import message_lines
from bertsecrets.tui.stats import Grid
from bertsecrets.tui.widgets.head_cursor import HeadCursor
from bertsecrets.tui.widgets.legend import legend_segments
from bertsecrets.tui.widgets.look import CachedLook

LABEL = 4  # "L12 "
MAX_CELL = 6


class HeadGrid(CachedLook, HeadCursor, can_focus=True):
    """Heads as cells: columns are heads, rows are layers (both shown 1-indexed)."""

    DEFAULT_CSS = """
    HeadGrid {
        height: auto;
        background: $surface;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.grid: Grid | None = None
        self._shape = (0, 0)
        self.message = "loading..."
        self._levels = np.zeros((0, 0), dtype=np.int16)

    def show(self, grid: Grid) -> None:
        self.grid, self.message = grid, ""
        self._shape = grid.values.shape
        if grid.kind == "cat":
            self._levels = np.where(np.isnan(grid.values), -1, grid.values).astype(np.int16)
        else:
            self._levels = self.palette.levels(grid.values, grid.low, grid.high)
        self.cursor = (min(self.cursor[0], self.shape[0] - 1), min(self.cursor[1], self.shape[1] - 1))
        self.refresh(layout=True)

    def show_message(self, text: str) -> None:
        self.grid, self.message = None, text
        self.refresh(layout=True)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape if self.grid is not None else (0, 0)

    @property
    def palette(self) -> palettes.Palette:
        if self.grid is not None and self.grid.kind == "cat":
            return palettes.classes()
        truecolor = palettes.app_truecolor(self.app)
        return palettes.diverging(truecolor) if self.grid is not None and self.grid.kind == "div" else palettes.sequential(truecolor)

    @property
    def cell_width(self) -> int:
        heads = max(self._shape[1], 1)
        return int(np.clip((self.size.width - LABEL) // heads, 1, MAX_CELL))

    @property
    def has_legend(self) -> bool:
        """Colour scales get a legend row; classes are named by their letters and the screen's note."""
        return self.grid is not None and self.grid.kind != "cat"

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self.grid is None:
            return len(message_lines(self.message, width))
        return 1 + self._shape[0] + self.has_legend

    # -- cursor -------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.grid is None or offset.y < 1 or offset.x < LABEL:
            return
        self.click_head(offset.y - 1, (offset.x - LABEL) // self.cell_width)

    # -- rendering ----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base, dim, mark = self.look
        if self.grid is None:
            return self.message_strip(self.message, y, width)
        w = self.cell_width
        layers, heads = self.shape
        if y == 0:
            segments = [Segment(" " * LABEL, base)]
            for h in range(heads):
                label = str(h + 1) if w >= len(str(h + 1)) else str((h + 1) % 10)
                segments.append(Segment(label.rjust(w)[:w], mark if h == self.cursor[1] else dim))
            return Strip(segments).adjust_cell_length(width, base)
        layer = y - 1
        if layer == layers and self.has_legend:
            legend = legend_segments(self.palette, self.grid.low, self.grid.high, base, self.grid.fmt, width - LABEL)
            return Strip([Segment(" " * LABEL, base), *legend]).crop(0, width).adjust_cell_length(width, base)
        if layer >= layers:
            return Strip.blank(width, base)
        label = f"L{layer + 1}".rjust(LABEL - 1) + " "
        segments = [Segment(label, mark if layer == self.cursor[0] else dim)]
        palette = self.palette
        for h in range(heads):
            level = palette.n if (layer, h) == self.cursor else int(self._levels[layer, h])
            segments.append(Segment(self._cell_text(layer, h, w), palette.cell(level)))
        return Strip(segments).adjust_cell_length(width, base)

    def _cell_text(self, layer: int, head: int, w: int) -> str:
        grid = self.grid
        assert grid is not None
        value = grid.values[layer, head]
        starred = grid.marks is not None and bool(grid.marks[layer, head])
        if grid.text is not None:
            text = grid.text[layer][head]
        elif w >= 5 and not np.isnan(value):
            text = grid.fmt(float(value))
        else:
            text = ""
        if w == 1:
            return "*" if starred else " "
        return (text[: w - 1].rjust(w - 1) if len(text) <= w - 1 else "") + ("*" if starred else " ")
