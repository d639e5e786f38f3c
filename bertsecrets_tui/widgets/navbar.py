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

    @staticmethod
    def _content(current: str) -> Content:
        parts = []
        for place in PLACES:
            style = "reverse bold" if place.mode == current else ""
            parts.append(Content.from_markup(
                f"[{style} @click=app.goto('{place.mode}')] [b]$key[/b] $title [/]", key=place.key, title=place.title
            ))
        return Content(" ").join(parts)
