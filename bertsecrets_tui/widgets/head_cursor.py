"""A cursor on one head of a layers x heads layout: its keys, its clicks and the messages they send."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget


class HeadCursor(Widget):
    """Base of the widgets that lay heads out as layers (down) x heads (across)."""

    BINDINGS = [
        Binding("up", "move(-1, 0)", "layer -1", show=False),
        Binding("down", "move(1, 0)", "layer +1", show=False),
        Binding("left", "move(0, -1)", "head -1", show=False),
        Binding("right", "move(0, 1)", "head +1", show=False),
        Binding("enter", "choose", "open head", show=False),
    ]

    class Moved(Message):
        """The cursor is on another head."""

        def __init__(self, widget: "HeadCursor", layer: int, head: int) -> None:
            super().__init__()
            self.widget, self.layer, self.head = widget, layer, head

        @property
        def control(self) -> "HeadCursor":
            return self.widget

    class Chosen(Moved):
        """Enter, or a click on the cursor's head: open this head."""

    cursor: tuple[int, int] = (0, 0)

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, heads) shown; (0, 0) while there is nothing to show."""
        raise NotImplementedError

    def move_cursor(self, layer: int, head: int, announce: bool = True) -> None:
        layers, heads = self.shape
        if not layers:
            return
        cursor = (int(np.clip(layer, 0, layers - 1)), int(np.clip(head, 0, heads - 1)))
        if cursor != self.cursor:
            self.cursor = cursor
            self.cursor_moved()
            self.refresh()
            if announce:
                self.post_message(self.Moved(self, *cursor))

    def cursor_moved(self) -> None:
        """Called when the cursor changed (to scroll it into view, say)."""

    def action_move(self, dl: int, dh: int) -> None:
        self.move_cursor(self.cursor[0] + dl, self.cursor[1] + dh)

    def action_choose(self) -> None:
        if self.shape[0]:
            self.post_message(self.Chosen(self, *self.cursor))

    def click_head(self, layer: int, head: int) -> None:
        """A click on a head: the first moves the cursor there, a second opens it."""
        layers, heads = self.shape
        if 0 <= layer < layers and 0 <= head < heads:
            self.focus()
            if (layer, head) == self.cursor:
                self.action_choose()
            else:
                self.move_cursor(layer, head)


def follow(cursors: Iterable[HeadCursor], layer: int, head: int, moved: Widget | None = None) -> None:
    """Put the cursor of every widget of ``cursors`` but ``moved`` (the one the person moved) on one head, silently."""
    for widget in cursors:
        if widget is not moved:
            widget.move_cursor(layer, head, announce=False)
