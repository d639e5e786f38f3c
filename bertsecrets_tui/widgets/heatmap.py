"""A Line-API heatmap of one attention map: two matrix rows per terminal line, token labels, a legend, a cursor.

Each terminal line of the map is one ``Strip`` of "▀" cells (foreground =
upper matrix row, background = lower row), built from palette levels computed
once per map and size, and kept in an LRU, so moving the cursor or scrolling
redraws only what changed. Query tokens label the lines (a gutter on the left,
as wide as the pane allows), key tokens the columns (a header on top, written
down the columns when they are narrow); a legend prints the colour scale's
ends. The gutter and header stay put when the map scrolls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bertsecrets.tui import palette as palettes
from bertsecrets.tui.raster import half_block_segments, resample
from bertsecrets.tui.widgets.legend import legend_segments, legend_width
from bertsecrets.tui.widgets.look import CachedLook

#: Display cells per token along each axis for `+`/`-`; half a cell tall, so a token is square at every zoom.
ZOOMS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Fit never draws a token larger than this many cells (a 5-token map would otherwise fill a wall).
FIT_MAX_ZOOM = 8
#: The narrowest query gutter; it widens (to GUTTER_MAX) where the pane has room beside the map.
GUTTER = 9
GUTTER_MAX = 24
#: Rows of the key header at most, when key tokens are written down their columns.
HEADER_MAX = 10
CORNER = "q \\ k"


def display_size(n: int, zoom: float) -> int:
    return max(1, math.ceil(n * zoom))


def fit_size(n: int, width: int, height: int) -> int:
    """The largest map (cells per side) that fits ``width`` columns and ``height`` lines of two cells each."""
    return max(1, min(width, 2 * height, FIT_MAX_ZOOM * max(n, 1)))


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


@dataclass(frozen=True)
class Layout:
    """Where things go in the widget: the map's side in cells, the gutter's width, the header's rows, the legend."""

    size: int
    gutter: int
    header: int
    legend_row: bool  # the legend has the bottom row to itself (else it sits right of the map, on the top row)

    @property
    def lines(self) -> int:
        return math.ceil(self.size / 2)


def query_labels(tokens: list[str], size: int) -> list[tuple[list[str], int, int]]:
    """Per terminal line of a ``size``-cell map: (the tokens that start on it, first token, last token shown).

    With two cells or more per token every token starts on a line of its own, so
    each gets its whole text; with fewer, a line shows two tokens or a range.
    """
    n = len(tokens)
    out = []
    for line in range(math.ceil(size / 2)):
        first = tokens_of(2 * line, n, size)[0]
        last = tokens_of(min(2 * line + 1, size - 1), n, size)[1] - 1
        if size >= n:
            starting = [tokens[t] for t in range(first, last + 1) if cells_of(t, n, size)[0] // 2 == line]
        else:
            starting = [tokens[first]] if first == last else [f"{first}-{last}"]
        out.append((starting, first, last))
    return out


def fit_label(parts: list[str], width: int) -> str:
    """Tokens of one line in ``width`` columns: whole when they fit, else each cut to an equal share."""
    text = "·".join(parts)
    if len(text) <= width or not parts:
        return text
    share = max(1, (width - (len(parts) - 1)) // len(parts))
    return "·".join(p[:share] for p in parts)[:width]


class Heatmap(CachedLook, ScrollView, can_focus=True):
    """One L x L matrix as half-block pixels, with query/key labels, a colour legend and a cursor."""

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
        self.zoom = 1.0  # cells per token now (fit: whatever fills the widget)
        self.auto_zoom = True  # fit the whole map into the widget, whatever its size
        self.cursor = (0, 0)
        self.placement = Layout(0, GUTTER, 1, False)
        self._labels: list[tuple[list[str], int, int]] = []
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
        self._rebuild()

    def show_message(self, text: str) -> None:
        """Show ``text`` in place of the map (missing or unreadable maps, nothing chosen yet)."""
        self.matrix = None
        self.message = text
        self._rebuild()

    def set_zoom(self, zoom: float | None) -> None:
        """Show the map at ``zoom`` cells per token, or None: fit it, now and whenever the size changes."""
        self.auto_zoom = zoom is None
        if zoom is not None:
            self.zoom = zoom
        self._rebuild()

    def next_zoom(self, step: int) -> float:
        """The zoom of ZOOMS one step bigger (``step`` > 0) or smaller than the map is shown now."""
        current = self.placement.size / max(self.n, 1)
        if step > 0:
            return next((z for z in ZOOMS if z > current + 1e-9), ZOOMS[-1])
        return next((z for z in reversed(ZOOMS) if z < current - 1e-9), ZOOMS[0])

    def on_resize(self, event: events.Resize) -> None:
        self._rebuild()

    # -- layout -------------------------------------------------------------

    def plan(self, width: int, height: int) -> Layout:
        """Where the map, its labels and its legend go in ``width`` x ``height`` cells.

        Fit takes the largest map that fits with the narrowest gutter, a
        one-row header and the legend (beside the map's top row if there is
        room, else on a row of its own); whatever the map leaves free then
        goes to the labels: a wider gutter, more header rows.
        """
        n = self.n
        legend = legend_width(self.palette, self.low, self.high) + 1
        if self.auto_zoom:
            beside = fit_size(n, width - GUTTER - legend, height - 1)
            below = fit_size(n, width - GUTTER, height - 2)
            size, legend_row = (below, True) if below > beside else (beside, False)
        else:
            size = display_size(n, self.zoom)
            legend_row = width - GUTTER - size < legend
            # A map bigger than the widget brings scrollbars, which take a row and a column from it.
            tall = 1 + math.ceil(size / 2) + legend_row > height
            wide = GUTTER + size + (0 if legend_row else legend) > width
            width -= self.styles.scrollbar_size_vertical if tall else 0
            height -= self.styles.scrollbar_size_horizontal if wide else 0
        lines = math.ceil(size / 2)
        body_height = height - legend_row
        wanted = self._header_rows(size)
        room = body_height - lines if body_height - lines >= 1 else body_height // 4
        header = max(1, min(wanted, room))
        free = width - size - (0 if legend_row else legend)
        labels = query_labels(self.tokens, size)
        needed = max((len("·".join(parts)) for parts, _, _ in labels), default=0) + 1
        gutter = max(GUTTER, min(needed, GUTTER_MAX, free))
        return Layout(size, gutter, header, legend_row)

    def _header_rows(self, size: int) -> int:
        """Rows the key header wants: one when every key fits across its columns, else its longest key, down."""
        n = self.n
        if size < n or not self.tokens:
            return 1
        longest = max(len(t) for t in self.tokens)
        narrowest = min(cells_of(k, n, size)[1] - cells_of(k, n, size)[0] for k in range(n))
        return 1 if longest <= narrowest - 1 else min(longest, HEADER_MAX)

    def _rebuild(self) -> None:
        self._generation += 1
        if self.matrix is None:
            self._levels = np.zeros((0, 0), dtype=np.int16)
            self._labels = []
            self.virtual_size = Size(0, 0)
        else:
            self.placement = layout = self.plan(self.size.width, self.size.height)
            self.zoom = layout.size / self.n
            shown = resample(self.matrix, layout.size, layout.size)
            self._levels = self.palette.levels(shown, self.low, self.high)
            self._labels = query_labels(self.tokens, layout.size)
            self.virtual_size = Size(layout.gutter + layout.size, layout.header + layout.lines + layout.legend_row)
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

    def cursor_region(self) -> Region:
        """The cursor's cells in the widget's virtual space (gutter and header included)."""
        layout = self.placement
        (r0, r1), (c0, c1) = self._cursor_cells()
        top = r0 // 2
        return Region(layout.gutter + c0, layout.header + top, c1 - c0, (r1 - 1) // 2 - top + 1)

    def scroll_to_cursor(self) -> None:
        """Scroll the least that shows the cursor's cells clear of the labels, the legend and the scrollbars.

        Once now, and again after the next refresh: a change of size brings or
        takes away scrollbars only then, which changes what is visible.
        """
        if self.matrix is None:
            return
        self._scroll_to_cursor()
        self.call_after_refresh(self._scroll_to_cursor)

    def _scroll_to_cursor(self) -> None:
        if self.matrix is None or not self.placement.size:
            return
        layout = self.placement
        spacing = Spacing(layout.header, 0, int(layout.legend_row), layout.gutter)
        self.scroll_to_region(self.cursor_region(), spacing=spacing, animate=False, immediate=True, force=True)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        layout = self.placement
        if offset is None or self.matrix is None or offset.x < layout.gutter or offset.y < layout.header:
            return
        if layout.legend_row and offset.y >= self.scrollable_content_region.height - 1:
            return
        size = self._levels.shape[0]
        x, y = self.scroll_offset
        col, row = x + offset.x - layout.gutter, 2 * (y + offset.y - layout.header)
        if col < size and row < size:
            self.focus()
            self.move_cursor(tokens_of(row, self.n, size)[0], tokens_of(col, self.n, size)[0])

    # -- rendering ----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        region = self.scrollable_content_region
        width = region.width
        base = self.look[0]
        if self.matrix is None:
            return self.message_strip(self.message, y, width)
        layout = self.placement
        scroll_x, scroll_y = self.scroll_offset
        body_width = max(0, width - layout.gutter)
        if layout.legend_row and y == region.height - 1:
            legend = Strip(legend_segments(self.palette, self.low, self.high, base, width=width))
            indent = max(0, min(layout.gutter, width - legend.cell_length))  # under the map, or as far left as needed
            return Strip.join([Strip.blank(indent, base), legend]).crop(0, width).adjust_cell_length(width, base)
        if y < layout.header:
            corner, body = self._header(y, scroll_x, body_width)
            strip = Strip.join([corner, body])
            if y == 0 and not layout.legend_row:
                strip = Strip.join([strip.adjust_cell_length(layout.gutter + layout.size + 1, base),
                                    Strip(legend_segments(self.palette, self.low, self.high, base))])
            return strip.crop(0, width).adjust_cell_length(width, base)
        line = scroll_y + y - layout.header
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
        width = self.placement.gutter
        base, dim, marked = self.look
        if line >= len(self._labels):
            return Strip.blank(width, base)
        parts, first, last = self._labels[line]
        text = fit_label(parts, width - 1)
        style = marked if first <= self.cursor[0] <= last else dim
        return Strip([Segment(text.rjust(width - 1), style), Segment(" ", base)])

    def _header(self, row: int, scroll_x: int, width: int) -> tuple[Strip, Strip]:
        """Row ``row`` of the key header: tokens across (wide columns), down (narrow ones), or a ruler (pooled)."""
        layout = self.placement
        size, n, rows = layout.size, self.n, layout.header
        chars = [" "] * size
        if size >= n:
            down = rows > 1
            for k, token in enumerate(self.tokens):
                c0, c1 = cells_of(k, n, size)
                if down:
                    if row < len(token):
                        chars[c0] = token[row]
                else:  # across: the token in its cells, a space before the next where there is room
                    room = c1 - c0 - 1 if c1 - c0 >= 3 else c1 - c0
                    for i, ch in enumerate(token[:room]):
                        chars[c0 + i] = ch
        elif row == 0:  # pooled: a ruler of token positions
            for k in range(0, n, 10):
                c = cells_of(k, n, size)[0]
                label = str(k)
                if c + len(label) <= size and all(ch == " " for ch in chars[max(c - 1, 0): c + len(label) + 1]):
                    chars[c: c + len(label)] = label
        c0, c1 = self._cursor_cells()[1]
        _, dim, mark = self.look
        body = Strip([Segment("".join(chars[:c0]), dim), Segment("".join(chars[c0:c1]), mark),
                      Segment("".join(chars[c1:]), dim)]).crop(scroll_x, scroll_x + width)
        label = CORNER if row == rows - 1 else ""
        corner = Strip([Segment(label.rjust(layout.gutter - 1) + " ", dim)])
        return corner, body
