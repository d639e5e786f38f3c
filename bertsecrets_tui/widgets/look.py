"""A widget's base, dim and highlighted text styles, cached until its CSS changes.

``Widget.rich_style`` walks the DOM on every call; a heatmap asks for it on
every line it draws, which cost more than drawing the line.
"""

from __future__ import annotations

from rich.style import Style


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
