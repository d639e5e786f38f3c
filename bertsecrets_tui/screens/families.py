"""The Families view: a run's heads as points of their 2-D embedding (JS distances), the cursor head's numbers beside."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from bertsecrets.tui import families as fam
from bertsecrets.tui import palette as palettes
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.raster import half_block_segments, resample
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, RunMapsScreen, SwitchRuns
from bertsecrets.tui.widgets.head_plot import HeadPlot

#: Side of the cursor head's map in the panel, in cells (two rows a line).
MINI = 16


def mini_map(matrix: np.ndarray, truecolor: bool) -> Text:
    """One map as MINI x MINI half-block cells scaled to its maximum."""
    palette = palettes.sequential(truecolor)
    pooled = resample(np.asarray(matrix, dtype=np.float32), MINI, MINI)
    peak = float(pooled.max()) or 1.0
    levels = palette.levels(pooled / peak, 0.0, 1.0)
    out = Text()
    for y in range(0, MINI, 2):
        for seg in half_block_segments(levels[y], levels[y + 1], palette):
            out.append(seg.text, seg.style)
        if y + 2 < MINI:
            out.append("\n")
    return out


class FamiliesScreen(SwitchRuns, RunMapsScreen):
    """Heads placed by the JS distance of their maps; arrows: nearest head that way, tab: next, enter: its map."""

    PLACE = "families"
    DEPENDS = ("maps", "tokens", "examples", "head_families", "head_stability", "class_shares", "ablation")
    BINDINGS = [
        Binding("t", "role", "pre/fine-tuned"),
        Binding("c", "colouring", "colour"),
        Binding("n", "example(1)", "input", key_display="n/p", tooltip="next input (the map beside)"),
        Binding("p", "example(-1)", "previous input", show=False),
        *SWITCH_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: fam.FamilyData | None = None
        self.colouring = fam.COLOURINGS[0]
        self.maps: np.ndarray | None = None  # attn[layer, head, query, key] of one input, read for maps_key
        self.maps_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="families-context", classes="context")
        with Horizontal():
            yield HeadPlot(id="families-plot")
            with Vertical(classes="side"):
                yield Static("", id="families-panel")
                yield Static("", id="families-map")
        yield from self.compose_footer()

    @property
    def plot(self) -> HeadPlot:
        return self.query_one(HeadPlot)

    def reload(self) -> None:
        super().reload()
        if self.selection.run_id is not None:
            self.load("families", self.reader.families, self.selection.run_id)

    def show_error(self, text: str) -> None:
        self.plot.show_message(text)

    def on_loaded(self, message: Loaded) -> None:
        if message.key != "families":
            return  # RunMapsScreen's handler, which Textual calls next, reads the context and the maps
        message.prevent_default()  # ... but not this one
        if message.error:
            self.data = None
            self.plot.show_message(message.error)
            self.query_one("#families-panel", Static).update(Text(message.error))
        else:
            self.data = message.value
            self.draw()

    def read_key(self) -> tuple:  # the panel shows one model's map
        s = self.selection
        return (s.run_id, s.role, s.example)

    def load_maps(self) -> None:
        s = self.selection
        self.load_for("maps", self.reader.example, s.run_id, s.role, s.example)

    def maps_loaded(self, message: Loaded) -> None:
        key, maps = message.value
        if self.left(key):
            return
        self.maps_key, self.maps = key, maps
        self.describe()

    # -- drawing --------------------------------------------------------------

    def draw(self) -> None:
        data, s = self.data, self.selection
        if data is None:
            return
        points = data.roles[s.role]
        values = fam.values_of(data, s.role, self.colouring)
        if values is None and self.colouring != "family":
            self.colouring = "family"  # nothing stored to colour by: say so in the context line
        self.plot.show(points, values, points.index(s.layer, s.head))
        sil = "" if points.silhouette is None else f", silhouette {points.silhouette:.2f}"
        self.query_one("#families-context", Static).update(Text(
            f"{data.task.upper()} · {s.role} · {len(points)} heads in {points.n_families} families{sil} · "
            f"colour: {self.colouring} · {data.run_id}"))
        self.describe()

    def describe(self) -> None:
        data, s = self.data, self.selection
        if data is None:
            return
        points = data.roles[s.role]
        text = fam.panel(data, s.role, points.index(s.layer, s.head))
        context = self.context
        if self.maps is not None and context is not None:
            if self.left(self.maps_key):  # another input or model than the maps held: its read is under way
                text.append(f"input {s.example + 1}/{context.n_examples}: reading...")
                self.query_one("#families-map", Static).update("")
            else:
                text.append(f"input {s.example + 1}/{context.n_examples}, L={self.maps.shape[-1]}:")
                self.query_one("#families-map", Static).update(
                    mini_map(self.maps[s.layer, s.head], palettes.app_truecolor(self.app)))
        self.query_one("#families-panel", Static).update(text)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.draw()
        self.plot.focus()

    def on_head_plot_moved(self, message: HeadPlot.Moved) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.describe()

    def on_head_plot_chosen(self, message: HeadPlot.Chosen) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.app.action_goto("map")

    # -- actions --------------------------------------------------------------

    def action_role(self) -> None:
        self.app.select(role="pretrained" if self.selection.role == "finetuned" else "finetuned")
        self.draw()
        self.sync()

    def action_colouring(self) -> None:
        if self.data is None:
            return
        options = [c for c in fam.COLOURINGS if c == "family" or fam.values_of(self.data, self.selection.role, c) is not None]
        self.colouring = options[(options.index(self.colouring) + 1) % len(options)] if self.colouring in options else "family"
        self.draw()
