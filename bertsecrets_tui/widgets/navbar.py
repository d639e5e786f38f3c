"""One line naming every screen with its key; the current one highlighted, each clickable, always all of them."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from bertsecrets.tui.keys import PLACES


def nav_items(current: str, width: int) -> list[tuple[str, str, str]]:
    """(mode, text, style) per screen: the widest of the spellings below that fits ``width`` cells.

    Full titles with room around them, then full titles close together, then
    short titles but the current screen's, then short titles, then keys alone
    (but the current screen's title): every screen stays reachable by a click
    however narrow the terminal.
    """
    spellings = (
        lambda p: f" {p.key} {p.title} ",
        lambda p: f"{p.key} {p.title}",
        lambda p: f"{p.key} {p.title if p.mode == current else p.brief}",
        lambda p: f"{p.key} {p.brief}",
        lambda p: f"{p.key} {p.brief}" if p.mode == current else p.key,
    )
    for spell in spellings:
        items = [(p.mode, spell(p), "reverse bold" if p.mode == current else "") for p in PLACES]
        if sum(len(text) for _, text, _ in items) + len(items) - 1 <= width:
            return items
    return items


class NavBar(Widget):
    """The screens of the browser as a one-line bar of links."""

    DEFAULT_CSS = """
    NavBar {
        height: 1;
        background: $panel;
    }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def render(self) -> Content:
        items = nav_items(self.current, self.size.width)
        parts = []
        for mode, text, style in items:
            key, _, rest = text.strip().partition(" ")
            lead = " " if text.startswith(" ") else ""
            parts.append(Content.from_markup(
                f"[{style} @click=app.goto('{mode}')]$lead[b]$key[/b]$rest[/]",
                lead=lead, key=key, rest=(" " + rest if rest else "") + lead,
            ))
        return Content(" ").join(parts)
