"""A Line-API heatmap of one attention map: two matrix rows per terminal line, token labels, a cursor.

Each terminal line is one ``Strip`` of "▀" cells (foreground = upper matrix
row, background = lower row), built from palette levels computed once per map
and zoom, and kept in an LRU, so moving the cursor or scrolling redraws only
what changed. Query tokens label the rows (a fixed gutter), key tokens the
columns (a fixed header line); the screen shows the exact value under the cursor.
"""

from __future__ import annotations

import math

import numpy as np
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bertsecrets.tui import palette as palettes
from bertsecrets.tui.raster import half_block_segments, resample
from bertsecrets.tui.widgets.look import CachedLook

#: Display cells per token along each axis; half a cell tall, so a token is square at every zoom.
ZOOMS = (0.25, 0.5, 1.0, 2.0)
GUTTER = 9


def display_size(n: int, zoom: float) -> int:
    return max(1, math.ceil(n * zoom))


def cells_of(token: int, n: int, size: int) -> tuple[int, int]:
    """The display cells [start, stop) that show matrix row ``token`` of ``n`` in ``size`` cells."""
    if size >= n:
        return -(-token * size // n), -(-(token + 1) * size // n)
    cell = token * size // n
    return cell, cell + 1


def tokens_of(cell: int, n: int, size: int) -> tuple[int, int]:
    """The matrix rows [start, stop) shown in display cell ``cell``."""
    if size >= n:
        token = cell * n // size
        return token, token + 1
    return -(-cell * n // size), -(-(cell + 1) * n // size)


def clean(token: str) -> str:
    return token[2:] if token.startswith("##") else token


class Heatmap(CachedLook, ScrollView, can_focus=True):
    """One L x L matrix as half-block pixels, with query/key labels and a cursor."""

    DEFAULT_CSS = """
    Heatmap {
        scrollbar-size: 1 1;
        background: $surface;
    }
    """

    BINDINGS = [
        Binding("up", "move(-1, 0)", "query -1", show=False),
        Binding("down", "move(1, 0)", "query +1", show=False),
        Binding("left", "move(0, -1)", "key -1", show=False),
        Binding("right", "move(0, 1)", "key +1", show=False),
        Binding("shift+up", "move(-8, 0)", show=False),
        Binding("shift+down", "move(8, 0)", show=False),
        Binding("shift+left", "move(0, -8)", show=False),
        Binding("shift+right", "move(0, 8)", show=False),
    ]

    class CursorMoved(Message):
        """The cursor is on another cell: query row ``query``, key column ``key``."""

        def __init__(self, heatmap: "Heatmap", query: int, key: int) -> None:
            super().__init__()
            self.heatmap, self.query, self.key = heatmap, query, key

        @property
        def control(self) -> "Heatmap":
            return self.heatmap

    def __init__(self, *, diverging: bool = False, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.diverging = diverging
        self.matrix: np.ndarray | None = None
        self.tokens: list[str] = []
        self.message = "loading..."
        self.low, self.high = 0.0, 1.0
        self.zoom = 1.0
        self.auto_zoom = True  # fit the whole map into the widget, whatever its size
        self.cursor = (0, 0)
        self._levels = np.zeros((0, 0), dtype=np.int16)
        self._generation = 0
        self._strips: LRUCache[tuple, Strip] = LRUCache(1024)

    # -- data ---------------------------------------------------------------

    @property
    def palette(self) -> palettes.Palette:
        truecolor = palettes.app_truecolor(self.app)
        return palettes.diverging(truecolor) if self.diverging else palettes.sequential(truecolor)

    @property
    def n(self) -> int:
        return 0 if self.matrix is None else self.matrix.shape[0]

    def show(self, matrix: np.ndarray, tokens: list[str], low: float, high: float) -> None:
        """Display ``matrix`` (L x L) with colours from ``low`` to ``high`` (diverging: -high..high)."""
        self.matrix = np.asarray(matrix, dtype=np.float32)
        n = self.matrix.shape[0]
        self.tokens = [clean(t) for t in tokens] if len(tokens) == n else [str(i) for i in range(n)]
        self.low, self.high = low, high
        self.message = ""
        q, k = self.cursor
        self.cursor = (min(q, n - 1), min(k, n - 1))
        if self.auto_zoom:
            self.zoom = self.fit_zoom()
        self._rebuild()

    def show_message(self, text: str) -> None:
        """Show ``text`` in place of the map (missing or unreadable maps, nothing chosen yet)."""
        self.matrix = None
        self.message = text
        self._rebuild()

    def set_zoom(self, zoom: float | None) -> None:
        """Show the map at ``zoom`` (one of ZOOMS), or None: fit it, now and whenever the size changes."""
        self.auto_zoom = zoom is None
        zoom = self.fit_zoom() if zoom is None else zoom
        if zoom != self.zoom:
            self.zoom = zoom
            self._rebuild()

    def on_resize(self, event: events.Resize) -> None:
        if self.auto_zoom and self.matrix is not None:
            self.set_zoom(None)

    def fit_zoom(self, width: int | None = None, height: int | None = None) -> float:
        """The largest zoom at which the whole map fits ``width`` x ``height`` cells (default: this widget)."""
        width = (self.size.width if width is None else width) - GUTTER
        height = (self.size.height if height is None else height) - 1
        for zoom in reversed(ZOOMS):
            if display_size(self.n, zoom) <= width and math.ceil(display_size(self.n, zoom) / 2) <= height:
                return zoom
        return ZOOMS[0]

    def _rebuild(self) -> None:
        self._generation += 1
        if self.matrix is None:
            self._levels = np.zeros((0, 0), dtype=np.int16)
            self.virtual_size = Size(0, 0)
        else:
            size = display_size(self.n, self.zoom)
            shown = resample(self.matrix, size, size)
            self._levels = self.palette.levels(shown, self.low, self.high)
            self.virtual_size = Size(GUTTER + size, 1 + math.ceil(size / 2))
        self.scroll_to_cursor()
        self.refresh()

    # -- cursor -------------------------------------------------------------

    def move_cursor(self, query: int, key: int, announce: bool = True) -> None:
        if self.matrix is None:
            return
        n = self.n
        cursor = (min(max(query, 0), n - 1), min(max(key, 0), n - 1))
        if cursor == self.cursor:
            return
        self.cursor = cursor
        self.scroll_to_cursor()
        self.refresh()
        if announce:
            self.post_message(self.CursorMoved(self, *cursor))

    def action_move(self, dq: int, dk: int) -> None:
        q, k = self.cursor
        self.move_cursor(q + dq, k + dk)

    def scroll_to_cursor(self) -> None:
        if self.matrix is None:
            return
        size = self._levels.shape[0]
        r0, _ = cells_of(self.cursor[0], self.n, size)
        c0, c1 = cells_of(self.cursor[1], self.n, size)
        view_w, view_h = max(1, self.size.width - GUTTER), max(1, self.size.height - 1)
        x, y = self.scroll_offset
        line = r0 // 2
        if c0 < x:
            x = c0
        elif c1 > x + view_w:
            x = c1 - view_w
        if line < y:
            y = line
        elif line >= y + view_h:
            y = line - view_h + 1
        self.scroll_to(x, y, animate=False, immediate=True)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.matrix is None or offset.x < GUTTER or offset.y < 1:
            return
        size = self._levels.shape[0]
        x, y = self.scroll_offset
        col, row = x + offset.x - GUTTER, 2 * (y + offset.y - 1)
        if col < size and row < size:
            self.focus()
            self.move_cursor(tokens_of(row, self.n, size)[0], tokens_of(col, self.n, size)[0])

    # -- rendering ----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.look[0]
        if self.matrix is None:
            return self.message_strip(self.message, y, width)
        scroll_x, scroll_y = self.scroll_offset
        body_width = max(0, width - GUTTER)
        if y == 0:
            gutter, body = self._header(scroll_x, body_width)
        else:
            line = scroll_y + y - 1
            gutter = self._gutter(line)
            body = self._body(line).crop(scroll_x, scroll_x + body_width)
        return Strip.join([gutter, body]).adjust_cell_length(width, base)

    def _cursor_cells(self) -> tuple[tuple[int, int], tuple[int, int]]:
        size = self._levels.shape[0]
        return cells_of(self.cursor[0], self.n, size), cells_of(self.cursor[1], self.n, size)

    def _body(self, line: int) -> Strip:
        (r0, r1), (c0, c1) = self._cursor_cells()
        on_cursor = r0 < 2 * line + 2 and r1 > 2 * line
        key = (self._generation, line, (c0, c1, r0, r1) if on_cursor else None)
        strip = self._strips.get(key)
        if strip is None:
            rows = self._levels[2 * line: 2 * line + 2]
            if len(rows) == 0:
                return Strip.blank(0)
            upper = rows[0].copy()
            lower = rows[1].copy() if len(rows) > 1 else None
            if on_cursor:
                cursor = self.palette.n  # the level drawn in the cursor colour
                if r0 <= 2 * line < r1:
                    upper[c0:c1] = cursor
                if lower is not None and r0 <= 2 * line + 1 < r1:
                    lower[c0:c1] = cursor
            strip = Strip(half_block_segments(upper, lower, self.palette), len(upper))
            self._strips[key] = strip
        return strip

    def _gutter(self, line: int) -> Strip:
        size = self._levels.shape[0]
        base, dim, marked = self.look
        if 2 * line >= size:
            return Strip.blank(GUTTER, base)
        first = tokens_of(2 * line, self.n, size)[0]
        last = tokens_of(min(2 * line + 1, size - 1), self.n, size)[1] - 1
        if first == last:
            text = self.tokens[first]
        elif last == first + 1:
            half = (GUTTER - 2) // 2
            text = f"{self.tokens[first][:half]}·{self.tokens[last][:half]}"
        else:
            text = f"{first}-{last}"
        style = marked if first <= self.cursor[0] <= last else dim
        return Strip([Segment(text[: GUTTER - 1].rjust(GUTTER - 1), style), Segment(" ", base)], GUTTER)

    def _header(self, scroll_x: int, width: int) -> tuple[Strip, Strip]:
        size = self._levels.shape[0]
        chars = [" "] * size
        if size >= self.n:  # at least one cell per key: the first letters of each key token
            per = size // self.n
            for k, token in enumerate(self.tokens):
                for i, ch in enumerate(token[:per].ljust(per)):
                    chars[k * per + i] = ch
        else:  # pooled: a ruler of token positions
            for k in range(0, self.n, 10):
                c = cells_of(k, self.n, size)[0]
                label = str(k)
                if all(ch == " " for ch in chars[max(c - 1, 0): c + len(label) + 1]):  # a space on each side
                    chars[c: c + len(label)] = label
        c0, c1 = self._cursor_cells()[1]
        _, dim, mark = self.look
        body = Strip([Segment("".join(chars[:c0]), dim), Segment("".join(chars[c0:c1]), mark),
                      Segment("".join(chars[c1:]), dim)], size).crop(scroll_x, scroll_x + width)
        corner = Strip([Segment("q \\ k".rjust(GUTTER - 1) + " ", dim)], GUTTER)
        return corner, body
