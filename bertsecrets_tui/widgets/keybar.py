"""The footer: the screen's keys on one line, the screen's own first, dropped whole (never cut) when the line is full.

Textual's Footer lays its keys out in a row that is cut at the terminal's
edge, mid-word (`esc bac`); this bar picks what fits: `? help` always (it
lists every key), then the screen's keys in the order they are declared,
then the app's `esc back` and `q quit`, and last the keys that go to another
task's or seed's run (shown after the screen's own, where there is room).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import App
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget

#: The app's keys kept whatever the width (the help lists everything else).
ALWAYS = ("help",)
#: Screen keys (by action name) shown only when every other key fits: the same on every screen that shows a run.
LAST = ("next_run",)


@dataclass(frozen=True)
class Item:
    key: str  # the key to simulate on a click
    shown: str  # how the key is printed
    description: str
    action: str
    from_app: bool

    @property
    def width(self) -> int:
        return len(self.shown) + 1 + len(self.description)

    @property
    def last(self) -> bool:
        return self.action.split("(", 1)[0] in LAST


def choose(items: list[Item], width: int) -> list[Item]:
    """The items that fit ``width`` cells (one space between them), by priority, in their display order."""
    ranked = ([i for i in items if i.from_app and i.action in ALWAYS] + [i for i in items if not i.from_app and not i.last]
              + [i for i in items if i.from_app and i.action not in ALWAYS] + [i for i in items if i.last])
    chosen, used = set(), 0
    for item in ranked:
        cost = item.width + (1 if chosen else 0)
        if used + cost <= width:
            chosen.add(item)
            used += cost
    return [i for i in items if i in chosen]


class KeyBar(Widget):
    """The keys of the screen it is on, as many as fit, each clickable."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-description-foreground;
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        self.refresh()

    def items(self) -> list[Item]:
        """The shown bindings of the focused widget, the screen and the app, one per action: the screen's own, its
        task and seed keys, then the app's."""
        seen: set[str] = set()
        own, app = [], []
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            from_app = isinstance(active.node, App)
            item = Item(key, self.app.get_key_display(binding), binding.description, binding.action, from_app)
            (app if from_app else own).append(item)
        return [i for i in own if not i.last] + [i for i in own if i.last] + app

    def render(self) -> Content:
        parts = []
        for item in choose(self.items(), self.size.width):
            parts.append(Content.from_markup(
                f"[@click=app.simulate_key({item.key!r})][b $footer-key-foreground]$shown[/] $description[/]",
                shown=item.shown, description=item.description,
            ))
        return Content(" ").join(parts)
