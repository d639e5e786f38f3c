"""The Map view: one head on one input, pretrained, fine-tuned and their difference, with tokens and values.

`N` switches between the attention weights a_ij and the norm-weighted maps
a_ij ||f(x_j)|| (Kobayashi et al. 2020), each row renormalised to sum to 1 as
the analyses' norm_* tables read them.
"""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from bertsecrets.store.maps import renormalise
from bertsecrets.tui import export
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.reader import ROLES, RunContext
from bertsecrets.tui.scales import SPANS
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, RunMapsScreen, SwitchRuns, task_seed
from bertsecrets.tui.widgets.heatmap import GUTTER, Heatmap
from bertsecrets.tui.widgets.legend import scale_number

PANES = ("pretrained", "finetuned", "difference")
TITLES = {"pretrained": "pretrained", "finetuned": "fine-tuned", "difference": "fine-tuned − pretrained"}
SHORT = {"pretrained": "pre", "finetuned": "ft", "difference": "Δ"}
VIEWS = ("finetuned", "all", "pretrained", "difference")  # `v` goes from one pane to all three first
#: Colour scales `c` cycles through: each map its own range, 0..1 (difference ±1), or 0..1 with the difference at ±span.
SCALES = ("per map", "0..1", "fixed")
#: What `N` switches between: the weights, or the norm-weighted maps.
WEIGHTINGS = ("weight", "norm")
#: The status line's words for each (the weights, the default, say nothing, as before norms were kept).
WEIGHTING_WORDS = {"weight": "", "norm": "by norm: a·‖f(x)‖, rows renormalised (N: weights)"}


def example_line(context: RunContext, e: int) -> str:
    """The input's sentences, gold label and prediction on one line."""
    if e >= len(context.examples):
        return ""
    row = context.examples[e]
    verdict = "" if row["correct"] is None else (" [green]✓[/]" if row["correct"] else " [red]✗[/]")
    gold = "-" if row["label"] is None else f"{row['label']:g}"
    pred = "-" if row["prediction"] is None else f"{row['prediction']:g}"
    text = escape(row["text_a"] + (f"  ‖  {row['text_b']}" if row["text_b"] else ""))
    return f"gold {gold} pred {pred}{verdict} · {text}"


def class_line(context: RunContext, e: int, layer: int, head: int) -> str:
    parts = []
    for role in ROLES:
        said = context.classes.describe(role, e, layer, head)
        if said:
            parts.append(f"{role}: " + ", ".join(f"{escape(who)} [b]{escape(label)}[/]" for who, label in said))
    return "class · " + (" │ ".join(parts) if parts else "none yet (label it on the Label screen, l)")


class MapScreen(SwitchRuns, RunMapsScreen):
    """One head on one input; n/p step through inputs, ]/[ heads, }/{ layers."""

    PLACE = "map"
    BINDINGS = [
        Binding("right_square_bracket", "head(1)", "head", key_display="]/[", tooltip="next head"),
        Binding("left_square_bracket", "head(-1)", "previous head", show=False),
        Binding("right_curly_bracket", "layer(1)", "layer", key_display="}/{", tooltip="next layer"),
        Binding("left_curly_bracket", "layer(-1)", "previous layer", show=False),
        Binding("plus,equals_sign", "zoom(1)", "zoom", key_display="+/-", tooltip="zoom in (0 fits the map to its pane again)"),
        Binding("minus", "zoom(-1)", "zoom out", show=False),
        Binding("0", "fit", "fit", show=False, tooltip="the largest zoom at which the whole map fits its pane"),
        Binding("v", "view", "view", tooltip="one pane or all three"),
        Binding("c", "scale", "scale", tooltip="colour scale: each map its own range, 0..1, or 0..1 with the difference on a fixed range"),
        Binding("less_than_sign", "span(-1)", "smaller fixed range", show=False,
                tooltip="fix the difference's range, or make it smaller"),
        Binding("greater_than_sign", "span(1)", "larger fixed range", show=False,
                tooltip="fix the difference's range, or make it larger"),
        Binding("N", "weighting", "norm", key_display="N", show=False,
                tooltip="weights a_ij, or norm-weighted maps a_ij·‖f(x_j)‖ (rows renormalised; Kobayashi et al. 2020)"),
        Binding("e", "export('figure')", "export", show=False, tooltip="the panes on screen as PNG and SVG"),
        Binding("b", "export('bertviz')", "bertviz", show=False, tooltip="the input's maps as a bertviz page"),
        *SWITCH_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, np.ndarray | str] = {}
        self.shown_key: tuple | None = None  # the read key (run, input) of the maps in ``data``
        self.view: str | None = None  # None: decided by the width when the first map arrives
        self.zoom: float | None = None  # None: fit the panes
        self.scale = SCALES[0]
        self.span = 0.1  # the difference's fixed range, ±span
        self.weighting = WEIGHTINGS[0]
        self.norms: dict[str, np.ndarray | str] = {}  # ||f(x_j)||[layer, head, key] per role, read for norms_key
        self.norms_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="map-context", classes="context")
        yield Static("", id="map-text", classes="context")
        with Horizontal(id="panes"):
            for pane in PANES:
                heatmap = Heatmap(diverging=pane == "difference", id=pane)
                heatmap.border_title = TITLES[pane]
                yield heatmap
        yield Static("", id="map-status", classes="status")
        yield Static("", id="map-classes", classes="status")
        yield from self.compose_footer()

    # -- loading --------------------------------------------------------------

    def stamp(self) -> tuple:  # the role is not part of it: the map view shows both
        s = self.selection
        return (s.run_id, s.example, *(self.app.versions.get(t, 0) for t in self.DEPENDS))

    def load_maps(self) -> None:
        s = self.selection
        cached = {role: self.reader.cached(s.run_id, role, s.example) for role in ROLES}
        if all(m is not None for m in cached.values()):  # read ahead: no need to wait for a thread
            self.maps_loaded(Loaded("example", (self.read_key(), cached)))
        else:
            self.load_for("example", self.reader.both, s.run_id, s.example)
        self.load_norms()

    def load_norms(self) -> None:
        """Read the input's norms, when the norm-weighted maps are shown and they are not read yet."""
        s = self.selection
        if self.weighting == "norm" and self.left(self.norms_key):
            self.norms = {}
            self.load_for("norms", self.reader.both_norms, s.run_id, s.example)

    def show_error(self, text: str) -> None:
        for pane in self.panes():
            pane.show_message(text)

    def redraw(self) -> None:
        self.draw()

    def maps_loaded(self, message: Loaded) -> None:
        key, value = message.value
        if self.left(key):
            return
        if message.key == "norms":
            self.norms_key, self.norms = key, value
            self.draw()
            return
        self.shown_key, self.data = key, value
        self.draw()
        following = self.selection.example + 1
        if self.context is not None and following < self.context.n_examples:
            # Read the next input into the reader's cache now, so that `n` shows it at once.
            run_id = self.selection.run_id
            self.run_worker(lambda: self.reader.both(run_id, following), group="prefetch", exclusive=True,
                            thread=True, exit_on_error=False)

    # -- drawing --------------------------------------------------------------

    def panes(self) -> list[Heatmap]:
        return [self.query_one(f"#{pane}", Heatmap) for pane in PANES]

    def matrices(self) -> dict[str, np.ndarray | str]:
        s = self.selection
        out: dict[str, np.ndarray | str] = {}
        for role in ROLES:
            data = self.data.get(role, "no maps")
            out[role] = data if isinstance(data, str) else data[s.layer, s.head]
            if self.weighting == "norm" and not isinstance(data, str):
                norms = self.norms.get(role, "reading the norms…") if self.norms_key == self.shown_key else \
                    "reading the norms…"
                out[role] = norms if isinstance(norms, str) else renormalise(out[role] * norms[s.layer, s.head][None, :])
        pre, ft = out["pretrained"], out["finetuned"]
        out["difference"] = (ft - pre) if not isinstance(pre, str) and not isinstance(ft, str) else \
            "needs both maps: " + (pre if isinstance(pre, str) else ft)
        return out

    def draw(self) -> None:
        context, s = self.context, self.selection
        if context is None or not self.data:
            return
        if self.left(self.shown_key):  # the maps held are of an input or run the cursor has left: its read is under way
            self.query_one("#map-context", Static).update(self.reading_line(layer_head=True))
            # The sentence is the new input's (none while another run's context is held); the classes and the
            # cursor's values wait for its maps.
            self.query_one("#map-text", Static).update(example_line(context, s.example) if context.run_id == s.run_id
                                                       else "")
            self.query_one("#map-classes", Static).update("")
            self.query_one("#map-status", Static).update("")
            return
        tokens = context.tokens[s.example] if s.example < len(context.tokens) else []
        matrices = self.matrices()
        if self.view is None:  # side by side when each pane shows the map whole at one cell per token
            n = next((m.shape[0] for m in matrices.values() if not isinstance(m, str)), 0)
            self.view = "all" if self.size.width >= 3 * (GUTTER + 2 + n) else "finetuned"
        for pane in self.panes():
            pane.border_title = TITLES[pane.id] + (" · by norm" if self.weighting == "norm" else "")
            pane.display = self.view in ("all", pane.id)
            matrix = matrices[pane.id]
            pane.auto_zoom = self.zoom is None
            if self.zoom is not None:
                pane.zoom = self.zoom
            if isinstance(matrix, str):
                pane.show_message(matrix)
            elif pane.id == "difference":
                span = {"per map": float(np.abs(matrix).max()) or 1.0, "0..1": 1.0, "fixed": self.span}[self.scale]
                pane.show(matrix, tokens, -span, span)
            else:
                high = (float(matrix.max()) or 1.0) if self.scale == "per map" else 1.0
                pane.show(matrix, tokens, 0.0, high)
        n = len(tokens) or next((m.shape[0] for m in matrices.values() if not isinstance(m, str)), 0)
        self.query_one("#map-context", Static).update(
            f"{task_seed(context.title, context.seed)} · input [b]{s.example + 1}[/]/{context.n_examples} · L={n} · "
            f"layer [b]{s.layer + 1}[/]/{context.n_layers} · head [b]{s.head + 1}[/]/{context.n_heads}"
        )
        self.query_one("#map-text", Static).update(example_line(context, s.example))
        self.query_one("#map-classes", Static).update(class_line(context, s.example, s.layer, s.head))
        self.describe_cursor()

    def scale_text(self) -> str:
        """The colour scale in words, with the keys that change it."""
        if self.scale == "per map":
            return "colours: each map its own range (c)"
        if self.scale == "0..1":
            return "colours: 0..1, Δ ±1 (c)"
        return f"colours: 0..1, Δ ±{scale_number(self.span)} (c, < >)"

    def describe_cursor(self) -> None:
        """The cursor's query and key tokens, whole, the values under it, and the colour scale."""
        panes = [p for p in self.panes() if p.matrix is not None]
        if not panes:
            self.query_one("#map-status", Static).update(escape(WEIGHTING_WORDS[self.weighting]))
            return
        q, k = panes[0].cursor
        tokens = panes[0].tokens
        values = []
        for pane in panes:
            v = float(pane.matrix[q, k])
            values.append(f"{SHORT[pane.id]} [b]{v:+.3f}[/]" if pane.id == "difference" else f"{SHORT[pane.id]} [b]{v:.3f}[/]")
        self.query_one("#map-status", Static).update(
            f"query {q} [b]{escape(tokens[q])}[/] → key {k} [b]{escape(tokens[k])}[/] · " + " · ".join(values)
            + f" · {escape(self.scale_text())}"
            + (f" · {escape(WEIGHTING_WORDS[self.weighting])}" if WEIGHTING_WORDS[self.weighting] else "")
        )

    def on_heatmap_cursor_moved(self, message: Heatmap.CursorMoved) -> None:
        for pane in self.panes():
            if pane is not message.heatmap:
                pane.move_cursor(message.query, message.key, announce=False)
        self.describe_cursor()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.data and not self.left(self.shown_key):
            self.draw()  # the layer or head may have been chosen on another screen
        focus = next((p for p in self.panes() if p.display), None)
        if focus is not None:
            focus.focus()

    # -- actions --------------------------------------------------------------

    def action_head(self, step: int) -> None:
        if self.context is not None:
            self.app.select(head=(self.selection.head + step) % self.context.n_heads)
            self.draw()

    def action_layer(self, step: int) -> None:
        if self.context is not None:
            self.app.select(layer=(self.selection.layer + step) % self.context.n_layers)
            self.draw()

    def action_zoom(self, step: int) -> None:
        shown = next((p for p in self.panes() if p.display and p.matrix is not None), None)
        if shown is None:
            return
        self.zoom = shown.next_zoom(step)
        for pane in self.panes():
            pane.set_zoom(self.zoom)

    def action_fit(self) -> None:
        self.zoom = None
        for pane in self.panes():
            pane.set_zoom(None)

    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view or "all") + 1) % len(VIEWS)]
        self.draw()

    def action_weighting(self) -> None:
        """N: the weights, or the norm-weighted maps (their norms read on the first switch)."""
        self.weighting = WEIGHTINGS[(WEIGHTINGS.index(self.weighting) + 1) % len(WEIGHTINGS)]
        self.load_norms()
        self.draw()

    def action_scale(self) -> None:
        self.scale = SCALES[(SCALES.index(self.scale) + 1) % len(SCALES)]
        self.draw()

    def action_span(self, step: int) -> None:
        """Fix the difference's range and make it smaller or larger (`<` / `>`)."""
        if self.scale == "fixed":
            index = min(range(len(SPANS)), key=lambda i: abs(SPANS[i] - self.span)) + step
            self.span = SPANS[min(max(index, 0), len(SPANS) - 1)]
        self.scale = "fixed"
        self.draw()

    def action_export(self, what: str) -> None:
        """e: the panes on screen as PNG and SVG; b: the input's maps as a bertviz page (paths in the status line)."""
        export.from_map_screen(self, what)
