"""One line naming every screen with its key; the current one highlighted, each clickable."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from bertsecrets.tui.keys import PLACES


class NavBar(Static):
    """The screens of the browser as a one-line bar of links."""

    DEFAULT_CSS = """
    NavBar {
        height: 1;
        background: $panel;
    }
    """

    def __init__(self, current: str) -> None:
        super().__init__(self._content(current))
        self.current = current

    def on_resize(self) -> None:
        # Without the padding around the other names when the bar would not fit the line.
        self.update(self._content(self.current, compact=self._content(self.current).cell_length > self.size.width))

    @staticmethod
    def _content(current: str, compact: bool = False) -> Content:
        parts = []
        for place in PLACES:
            style = "reverse bold" if place.mode == current else ""
            pad = "" if compact and place.mode != current else " "  # the current one keeps it, to stand out
            parts.append(Content.from_markup(
                f"[{style} @click=app.goto('{place.mode}')]{pad}[b]$key[/b] $title{pad}[/]", key=place.key,
                title=place.title
            ))
        return Content(" ").join(parts)
