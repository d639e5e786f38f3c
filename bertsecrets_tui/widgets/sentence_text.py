"""An input's text with each word piece (or word) coloured by attention: a Line-API view of sentence.render.

The screen hands it the boxes and one pane per model; the widget lays them out
for its width (again when resized) and keeps the selected box in view.
"""

from __future__ import annotations

from typing import Sequence

from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bertsecrets.tui import palette as palettes
from bertsecrets.tui.sentence import Pane, Placed, Unit, neighbour, render
from bertsecrets.tui.widgets.look import CachedLook


class SentenceText(CachedLook, ScrollView, can_focus=True):
    """Coloured text of one input, one pane per model one above the other."""

    DEFAULT_CSS = """
    SentenceText {
        scrollbar-size: 1 1;
        background: $surface;
    }
    """

    BINDINGS = [
        Binding("left", "move(-1)", "token -1", show=False),
        Binding("right", "move(1)", "token +1", show=False),
        Binding("shift+left", "move(-8)", show=False),
        Binding("shift+right", "move(8)", show=False),
        Binding("up", "line(-1)", "line up", show=False),
        Binding("down", "line(1)", "line down", show=False),
        Binding("home", "move(-1_000_000)", "first", show=False),
        Binding("end", "move(1_000_000)", "last", show=False),
    ]

    class CursorMoved(Message):
        """Another box is selected: ``unit``, an index into the boxes shown."""

        def __init__(self, text: "SentenceText", unit: int) -> None:
            super().__init__()
            self.text, self.unit = text, unit

        @property
        def control(self) -> "SentenceText":
            return self.text

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.units: list[Unit] = []
        self.panes: list[Pane] = []
        self.cursor = 0
        self.values = False
        self.message = "loading..."
        self.lines: list[Strip] = []
        self.cursor_lines: list[int] = []
        self.boxes: list[list[Placed]] = []
        self.placed: list[list[Placed]] = []

    @property
    def palette(self) -> palettes.Palette:
        return palettes.sequential(palettes.app_truecolor(self.app))

    @property
    def text_width(self) -> int:
        return max(self.scrollable_content_region.width - 1, 8)  # a column for the scroll bar, should it come

    def show(self, units: Sequence[Unit], panes: Sequence[Pane], cursor: int, values: bool) -> None:
        self.units, self.panes, self.cursor, self.values, self.message = list(units), list(panes), cursor, values, ""
        self.relayout()

    def show_message(self, text: str) -> None:
        self.units, self.panes, self.message = [], [], text
        self.relayout()

    def on_resize(self, event: events.Resize) -> None:
        self.relayout()

    def relayout(self) -> None:
        base, dim, mark = self.look
        if self.message:
            self.lines, self.cursor_lines, self.boxes, self.placed = [], [], [], []
            self.virtual_size = Size(0, 0)
        else:
            drawn = render(self.units, self.panes, self.cursor, self.text_width, self.palette, values=self.values,
                           base=base)
            self.lines = [Strip(segments) for segments in drawn.lines]
            self.cursor_lines, self.boxes, self.placed = drawn.cursor_lines, drawn.layout, drawn.placed
            self.virtual_size = Size(self.text_width, len(self.lines))
            self.scroll_to_cursor()
        self.refresh()

    # -- cursor -------------------------------------------------------------

    def select(self, unit: int) -> None:
        """Select box ``unit`` (clamped) and say so; the screen recolours the text for it."""
        if not self.units:
            return
        unit = min(max(unit, 0), len(self.units) - 1)
        if unit != self.cursor:
            self.cursor = unit
            self.post_message(self.CursorMoved(self, unit))

    def action_move(self, step: int) -> None:
        self.select(self.cursor + step)

    def action_line(self, step: int) -> None:
        if self.boxes:
            self.select(neighbour(self.boxes, self.cursor, step))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or not self.units:
            return
        self.focus()
        y = self.scroll_offset.y + offset.y
        for box in self.placed[y] if y < len(self.placed) else []:
            if box.unit >= 0 and box.x <= offset.x < box.x + cell_len(box.text):
                self.select(box.unit)

    def scroll_to_cursor(self) -> None:
        """Bring the selected box of every pane into view when they fit together, else that of the first."""
        if not self.cursor_lines:
            return
        view = max(self.scrollable_content_region.height, 1)
        y = self.scroll_offset.y
        first, last = min(self.cursor_lines), max(self.cursor_lines)
        if last - first >= view:
            last = first
        if first < y:
            y = max(first - 1, 0)  # the pane's title line too, when it is just above
        elif last >= y + view:
            y = last - view + 1
        self.scroll_to(0, y, animate=False, immediate=True)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.look[0]
        if self.message:
            return self.message_strip(self.message, y, width)
        line = self.scroll_offset.y + y
        if line >= len(self.lines):
            return Strip.blank(width, base)
        return self.lines[line].adjust_cell_length(width, base)

    def segments_at(self, y: int) -> list[Segment]:
        """The segments of laid-out line ``y`` (for tests and the benchmark)."""
        return list(self.lines[y]) if y < len(self.lines) else []
