"""The help screen: every screen and key, and the bindings of the screen it was opened from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from bertsecrets.tui.keys import PLACES
from bertsecrets.tui.markup import escape

GENERAL = (
    ("?  F1", "this help"),
    ("escape", "back to the previous screen"),
    ("q  ctrl+q", "quit"),
    ("arrows", "move the cursor (shift: 8 at a time in maps); the value under it is always printed"),
    ("enter / click", "open what is under the cursor"),
)


def key_name(key: str) -> str:
    names = {"right_square_bracket": "]", "left_square_bracket": "[", "right_curly_bracket": "}",
             "left_curly_bracket": "{", "plus": "+", "equals_sign": "=", "minus": "-", "question_mark": "?"}
    return "  ".join(names.get(k, k) for k in key.split(","))


def help_text(screen: Screen) -> str:
    lines = ["[b]Screens[/]"]
    lines += [f"  [b]{p.key}[/]  {p.title:<9} {escape(p.about)}" for p in PLACES]
    lines += ["", "[b]Everywhere[/]"]
    lines += [f"  [b]{escape(k):<14}[/] {escape(what)}" for k, what in GENERAL]
    # The screen's keys, its base classes' included (Textual merges them the same way).
    own = [b for cls in reversed(type(screen).__mro__) if cls.__module__.startswith("bertsecrets.tui")
           for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]
    if own:
        title = next((p.title for p in PLACES if p.mode == getattr(screen, "PLACE", "")), "this screen")
        lines += ["", f"[b]{title}[/]"]
        if screen.__doc__:
            lines.append(f"  {escape(screen.__doc__.strip())}")
        lines += [f"  [b]{escape(key_name(b.key)):<14}[/] {escape(b.description or b.action)}" for b in own]
    lines += ["", "Colours: 256-colour palettes of exact xterm indices (truecolor when $COLORTERM says so);",
              "run `bertsecrets browse --colors truecolor` to force it. Layers and heads are counted from 1.",
              "", "[dim]escape, ? or q closes this help[/]"]
    return "\n".join(lines)


class HelpScreen(ModalScreen):
    """Keys and screens of the browser."""

    BINDINGS = [Binding("escape,question_mark,q,f1", "dismiss", "close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.text = help_text(screen)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self.text)
