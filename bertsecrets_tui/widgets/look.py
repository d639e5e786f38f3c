"""A widget's base, dim and highlighted text styles, cached until its CSS changes; messages in place of data.

``Widget.rich_style`` walks the DOM on every call; a heatmap asks for it on
every line it draws, which cost more than drawing the line.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from bertsecrets.tui.raster import message_lines


class CachedLook:
    """Mixin for Line-API widgets: ``self.look`` is (base, dim, marked) Rich styles."""

    _look: tuple[Style, Style, Style] | None = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._look = None

    @property
    def look(self) -> tuple[Style, Style, Style]:
        if self._look is None:
            base = self.rich_style
            self._look = (base, base + Style(dim=True), base + Style(reverse=True, bold=True))
        return self._look

    def message_strip(self, text: str, y: int, width: int) -> Strip:
        """Line ``y`` of ``text`` wrapped to ``width``: a missing or unreadable piece, said where it would be."""
        lines = message_lines(text, width)
        base = self.look[0]
        return Strip([Segment(lines[y] if y < len(lines) else "", base)]).adjust_cell_length(width, base)
