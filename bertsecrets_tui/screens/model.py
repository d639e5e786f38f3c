"""The Model view: every head of one input at once, as a sheet of thumbnails."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, RunMapsScreen, SwitchRuns, task_seed
from bertsecrets.tui.screens.map import class_line, example_line
from bertsecrets.tui.widgets.thumbnails import Thumbnails


class ModelScreen(SwitchRuns, RunMapsScreen):
    """All heads of one input as thumbnails; Enter opens the head under the cursor."""

    PLACE = "model"
    BINDINGS = [
        Binding("t", "role", "pre/fine-tuned"),
        Binding("plus,equals_sign", "zoom(1)", "size", key_display="+/-", tooltip="bigger thumbnails"),
        Binding("minus", "zoom(-1)", "smaller", show=False),
        *SWITCH_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.maps: np.ndarray | None = None  # attn[layer, head, query, key] of one input, read for maps_key
        self.maps_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="model-context", classes="context")
        yield Static("", id="model-text", classes="context")
        yield Thumbnails(id="sheet")
        yield Static("", id="model-status", classes="status")
        yield from self.compose_footer()

    def read_key(self) -> tuple:  # the sheet shows one model's maps
        s = self.selection
        return (s.run_id, s.role, s.example)

    def load_maps(self) -> None:
        s = self.selection
        self.load_for("maps", self.reader.example, s.run_id, s.role, s.example)

    def show_error(self, text: str) -> None:
        self.query_one(Thumbnails).show_message(text)

    def redraw(self) -> None:
        self.describe()

    def maps_loaded(self, message: Loaded) -> None:
        key, maps = message.value
        if self.left(key):
            return
        self.maps_key, self.maps = key, maps
        sheet = self.query_one(Thumbnails)
        sheet.show(self.maps)
        sheet.move_cursor(self.selection.layer, self.selection.head, announce=False)
        self.describe()

    def describe(self) -> None:
        context, s = self.context, self.selection
        if context is None or self.maps is None:
            return
        if self.left(self.maps_key):  # the sheet holds another input, model or run: the selection's read is under way
            self.query_one("#model-context", Static).update(self.reading_line(f"[b]{s.role}[/]"))
            # The sentence is the new input's (none while another run's context is held).
            self.query_one("#model-text", Static).update(example_line(context, s.example) if context.run_id == s.run_id
                                                         else "")
            self.query_one("#model-status", Static).update(f"layer [b]{s.layer + 1}[/] head [b]{s.head + 1}[/]")
            return
        self.query_one("#model-context", Static).update(
            f"{task_seed(context.title, context.seed)} · input [b]{s.example + 1}[/]/{context.n_examples} · L={self.maps.shape[-1]} · "
            f"[b]{s.role}[/] · each thumbnail scaled to its own maximum"
        )
        self.query_one("#model-text", Static).update(example_line(context, s.example))
        m = self.maps[s.layer, s.head]
        q, k = np.unravel_index(int(m.argmax()), m.shape)
        tokens = context.tokens[s.example] if s.example < len(context.tokens) else []
        where = escape(f"{tokens[q]} → {tokens[k]}") if len(tokens) == m.shape[0] else f"{q} → {k}"
        self.query_one("#model-status", Static).update(
            f"layer [b]{s.layer + 1}[/] head [b]{s.head + 1}[/] · max [b]{m.max():.3f}[/] at {where} · "
            + class_line(context, s.example, s.layer, s.head)
        )

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        sheet = self.query_one(Thumbnails)
        sheet.move_cursor(self.selection.layer, self.selection.head, announce=False)
        self.describe()
        sheet.focus()

    def on_head_cursor_moved(self, message: Thumbnails.Moved) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.describe()

    def on_head_cursor_chosen(self, message: Thumbnails.Chosen) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.app.action_goto("map")

    def action_role(self) -> None:
        self.app.select(role="pretrained" if self.selection.role == "finetuned" else "finetuned")
        self.sync()

    def action_zoom(self, step: int) -> None:
        self.query_one(Thumbnails).zoom(step)
