"""One small example map per pattern class, side by side, each titled with its class: the thumbnail sheet's look.

It is the thumbnail sheet (widgets/thumbnails.py) with one row of maps, class
names where head numbers would be, no layer labels and no cursor: the maps are
there to compare with, not to open.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.segment import Segment
from textual import events
from textual.strip import Strip

from bertsecrets.tui.raster import resample
from bertsecrets.tui.widgets.thumbnails import LABEL, Thumbnails

#: Names short enough for a thumbnail 4 cells wide, in store.labels.PATTERN_CLASSES order.
SHORT_NAMES = {"vertical": "vert", "diagonal": "diag", "vertical+diagonal": "v+d", "block": "blk",
               "heterogeneous": "het"}


class ClassReferences(Thumbnails, can_focus=False):
    """A row of small maps, one per pattern class; a class without an example is left empty."""

    DEFAULT_CSS = """
    ClassReferences {
        height: auto;
        max-height: 10;
        scrollbar-size: 0 0;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.titles: list[str] = []
        self.cursor = (-1, -1)  # no head is framed

    def show_maps(self, maps: Sequence[np.ndarray | None], titles: Sequence[str]) -> None:
        """One map (L x L, any L) or None per title; drawn pooled to the thumbnail size, each to its own maximum."""
        size = max((m.shape[0] for m in maps if m is not None), default=1)
        stacked = np.stack([np.full((size, size), np.nan, dtype=np.float32) if m is None else
                            resample(np.asarray(m, dtype=np.float32), size, size) for m in maps])
        self.titles = list(titles)
        self.show(stacked[None])

    def title(self, index: int, width: int) -> str:
        name = self.titles[index] if index < len(self.titles) else ""
        return name if len(name) <= width else SHORT_NAMES.get(name, name)[:width]

    def on_click(self, event: events.Click) -> None:
        """Nothing to open."""

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if self.maps is None or y > self.thumb // 2:
            return super().render_line(y) if self.maps is None else Strip.blank(width, self.look[0])
        base, dim, _ = self.look
        t = self.thumb
        if y == 0:
            segments = [Segment(" " * LABEL, base)]
            for h in range(self.shape[1]):
                segments += [Segment(" ", base), Segment(self.title(h, t).center(t)[:t], dim)]
            return Strip(segments).adjust_cell_length(width, base)
        line = super().render_line(y)  # the maps, after the layer label the sheet puts first
        return Strip.join([Strip.blank(LABEL, base), line.crop(LABEL, width)]).adjust_cell_length(width, base)
