"""The help screen: every screen and key, and the bindings of the screen it was opened from."""

from __future__ import annotations

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from bertsecrets.tui.keys import PLACES

GENERAL = (
    ("?  F1", "this help"),
    ("escape", "back to the previous screen"),
    ("q  ctrl+q", "quit"),
    ("arrows", "move the cursor (shift: 8 at a time in maps); the value under it is always printed"),
    ("enter / click", "open what is under the cursor"),
    ("click", "a screen's name in the top line opens it; a key in the bottom line presses it"),
)


def key_name(key: str) -> str:
    names = {"right_square_bracket": "]", "left_square_bracket": "[", "right_curly_bracket": "}",
             "left_curly_bracket": "{", "plus": "+", "equals_sign": "=", "minus": "-", "question_mark": "?",
             "less_than_sign": "<", "greater_than_sign": ">"}
    return "  ".join(names.get(k, k) for k in key.split(","))


KEY_WIDTH = 14


def key_table(rows: list[tuple[str, str]]) -> Table:
    """Keys in a column of their own; each description wraps under itself, never under the keys."""
    table = Table.grid(padding=(0, 1))
    table.add_column(width=KEY_WIDTH, no_wrap=True, style="bold")
    table.add_column(ratio=1)
    for key, what in rows:  # Text, not markup: a key such as `[` is printed as it is
        table.add_row(Text(key), Text(what))
    return table


def help_sections(screen: Screen) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(keys, what they do)]) for the screens, the keys that work everywhere, and ``screen``'s own."""
    sections = [("Screens", [(f"{p.key}  {p.title}", p.about) for p in PLACES]), ("Everywhere", list(GENERAL))]
    # The screen's keys, its base classes' included (Textual merges them the same way).
    own = [b for cls in reversed(type(screen).__mro__) if cls.__module__.startswith("bertsecrets.tui")
           for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]
    if own:
        title = next((p.title for p in PLACES if p.mode == getattr(screen, "PLACE", "")), "this screen")
        rows = [("", screen.__doc__.strip())] if screen.__doc__ else []
        rows += [(key_name(b.key), b.tooltip or b.description or b.action) for b in own]
        sections.append((title, rows))
    return sections


def help_renderable(screen: Screen) -> Group:
    parts: list = []
    for title, rows in help_sections(screen):
        parts += [Text(title, style="bold"), Padding(key_table(rows), (0, 0, 1, 2))]
    parts += [Text("Colours: 256-colour palettes of exact xterm indices (truecolor when $COLORTERM says so); "
                   "run `bertsecrets browse --colors truecolor` to force it. Layers and heads are counted from 1."),
              Text(""), Text("escape, ? or q closes this help", style="dim")]
    return Group(*parts)


class HelpScreen(ModalScreen):
    """Keys and screens of the browser."""

    BINDINGS = [Binding("escape,question_mark,q,f1", "dismiss", "close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.body = help_renderable(screen)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self.body)
