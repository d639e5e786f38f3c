"""A thumbnail sheet: every head of one input as a small heatmap, layers down, heads across.

Each thumbnail is its map max-pooled to t x t cells (t/2 terminal lines of
"▀") and coloured relative to its own maximum, so the shape of every head's
pattern shows even where its values are small. The cursor head is framed, and
the sheet scrolls to keep it in view; the bottom row is the colour legend.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.cache import LRUCache
from textual.geometry import Region, Size, Spacing
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bertsecrets.tui import palette as palettes
from bertsecrets.tui.raster import half_block_segments, resample
from bertsecrets.tui.widgets.head_cursor import HeadCursor
from bertsecrets.tui.widgets.legend import legend_segments
from bertsecrets.tui.widgets.look import CachedLook

LABEL = 4  # "L12 "
SIZES = (4, 6, 8, 12, 16, 24, 32)


class Thumbnails(CachedLook, HeadCursor, ScrollView, can_focus=True):
    """attn[layer, head, L, L] of one input as a sheet of small heatmaps."""

    DEFAULT_CSS = """
    Thumbnails {
        overflow: auto auto;  /* HeadCursor comes first among the bases, so ScrollView's own rule does not apply */
        scrollbar-size: 1 1;
        background: $surface;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.maps: np.ndarray | None = None
        self.message = "loading..."
        self.size_cells = 0  # 0: fit the width
        self._levels = np.zeros((0, 0, 0, 0), dtype=np.int16)
        self._generation = 0
        self._strips: LRUCache[tuple, Strip] = LRUCache(512)

    @property
    def palette(self) -> palettes.Palette:
        return palettes.sequential(palettes.app_truecolor(self.app))

    @property
    def shape(self) -> tuple[int, int]:
        return (0, 0) if self.maps is None else self.maps.shape[:2]

    @property
    def thumb(self) -> int:
        """Thumbnail side in cells (even: two rows per line)."""
        if self.size_cells:
            return self.size_cells
        heads = max(self.shape[1], 1)
        fit = (self.size.width - LABEL) // heads - 1
        return max(s for s in SIZES if s <= fit) if fit >= SIZES[0] else SIZES[0]

    def show(self, maps: np.ndarray) -> None:
        self.maps, self.message = np.asarray(maps, dtype=np.float32), ""
        layers, heads = self.shape
        self.cursor = (min(self.cursor[0], layers - 1), min(self.cursor[1], heads - 1))
        self._rebuild()

    def show_message(self, text: str) -> None:
        self.maps, self.message = None, text
        self._rebuild()

    def zoom(self, step: int) -> None:
        current = SIZES.index(self.thumb) if self.thumb in SIZES else 0
        self.size_cells = SIZES[int(np.clip(current + step, 0, len(SIZES) - 1))]
        self._rebuild()

    def on_resize(self, event: events.Resize) -> None:
        if not self.size_cells:
            self._rebuild()
        else:
            self.cursor_moved()

    def _rebuild(self) -> None:
        self._generation += 1
        if self.maps is None:
            self._levels = np.zeros((0, 0, 0, 0), dtype=np.int16)
            self.virtual_size = Size(0, 0)
        else:
            t = self.thumb
            pooled = resample(self.maps, t, t)
            peak = pooled.max(axis=(2, 3), keepdims=True)
            self._levels = self.palette.levels(pooled / np.where(peak > 0, peak, 1), 0.0, 1.0)
            layers, heads = self.shape
            self.virtual_size = Size(LABEL + heads * (t + 1), 1 + layers * (t // 2 + 1) + 1)
        self.refresh()
        self.cursor_moved()

    # -- cursor -------------------------------------------------------------

    def cursor_region(self) -> Region:
        """The cursor head's thumbnail and its frame, in the sheet's virtual space."""
        t = self.thumb
        return Region(LABEL + self.cursor[1] * (t + 1), 1 + self.cursor[0] * (t // 2 + 1), t + 1, t // 2 + 1)

    def cursor_moved(self) -> None:
        """Scroll the least that shows the cursor head whole, now and after the next refresh (when a change of
        size has brought or taken away the scrollbars)."""
        if self.maps is not None:
            self._follow()
            self.call_after_refresh(self._follow)

    def _follow(self) -> None:
        if self.maps is not None:
            self.scroll_to_region(self.cursor_region(), spacing=Spacing(1, 0, 1, LABEL), animate=False,
                                  immediate=True, force=True)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.maps is None:
            return
        sx, sy = self.scroll_offset
        t = self.thumb
        x, y = offset.x + sx - LABEL, offset.y + sy - 1
        if x < 0 or y < 0:
            return
        self.click_head(y // (t // 2 + 1), x // (t + 1))

    # -- rendering ----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base, dim, mark = self.look
        if self.maps is None:
            return self.message_strip(self.message, y, width)
        sx, sy = self.scroll_offset
        t = self.thumb
        band = t // 2 + 1
        if y == self.scrollable_content_region.height - 1:
            return self._legend(width)
        if y == 0:
            segments = []
            for h in range(self.shape[1]):
                segments.append(Segment(" ", base))
                segments.append(Segment(f"H{h + 1}".center(t)[:t], mark if h == self.cursor[1] else dim))
            body = Strip(segments).crop(sx, sx + width - LABEL)
            return Strip.join([Strip.blank(LABEL, base), body]).adjust_cell_length(width, base)
        line = sy + y - 1
        layer, within = divmod(line, band)
        if layer >= self.shape[0]:
            return Strip.blank(width, base)
        label = f"L{layer + 1}".rjust(LABEL - 1) + " " if within == 0 else " " * LABEL
        gutter = Strip([Segment(label, mark if layer == self.cursor[0] else dim)], LABEL)
        return Strip.join([gutter, self._line(layer, within).crop(sx, sx + width - LABEL)]).adjust_cell_length(width, base)

    def _legend(self, width: int) -> Strip:
        """The colours from 0 to a head's own maximum; the cursor head's maximum as the example."""
        base, dim, _ = self.look
        peak = float(self.maps[self.cursor].max()) if self.maps is not None else 1.0
        segments = [Segment(" " * LABEL, base), *legend_segments(self.palette, 0.0, peak, base),
                    Segment(f"  each thumbnail 0..its own maximum (here L{self.cursor[0] + 1} H{self.cursor[1] + 1})", dim)]
        return Strip(segments).crop(0, width).adjust_cell_length(width, base)

    def _line(self, layer: int, within: int) -> Strip:
        selected = self.cursor[1] if layer == self.cursor[0] else -1
        key = (self._generation, layer, within, selected)
        strip = self._strips.get(key)
        if strip is not None:
            return strip
        t, base = self.thumb, self.look[0]
        frame = base + Style(color=self.palette.cursor, bold=True)
        segments: list[Segment] = []
        for h in range(self.shape[1]):
            if within == t // 2:  # the gap between layers: under the cursor head, its frame
                segments.append(Segment(" " + ("▀" * t if h == selected else " " * t), frame if h == selected else base))
                continue
            segments.append(Segment("▐" if h == selected else " ", frame))
            rows = self._levels[layer, h, 2 * within: 2 * within + 2]
            segments.extend(half_block_segments(rows[0], rows[1] if len(rows) > 1 else None, self.palette))
        strip = Strip(segments)
        self._strips[key] = strip
        return strip
