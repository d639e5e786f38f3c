"""The Sentence view: an input's text coloured by the attention one token gives (or gets), per head or layer."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from bertsecrets.core.errors import UserError
from bertsecrets.tui import sentence
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.reader import ROLES, Reader
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, RunMapsScreen, SwitchRuns, task_seed
from bertsecrets.tui.sentence import Pane, Piece, Unit
from bertsecrets.tui.widgets.sentence_text import SentenceText

TITLES = {"pretrained": "pretrained", "finetuned": "fine-tuned"}
SHORT = {"pretrained": "pre", "finetuned": "ft"}
#: `t` goes through these: both models one above the other, then each alone.
MODELS = ("both", "finetuned", "pretrained")
#: Inputs whose word pieces are kept in memory (their maps are in the reader's cache).
CACHED_PIECES = 32


def read_input(reader: Reader, run_id: str, example: int) -> tuple[dict[str, np.ndarray | str], list[Piece]]:
    """Both models' maps of one input and its word pieces."""
    return reader.both(run_id, example), [Piece.from_row(r) for r in reader.pieces(run_id, example)]


def top(values: np.ndarray, units: list[Unit], skip: int, n: int = 3) -> str:
    """The ``n`` largest values but box ``skip``'s, as `text .61` pairs."""
    order = [int(u) for u in np.argsort(-values, kind="stable") if u != skip and values[u] > 0][:n]
    return ", ".join(sentence.label(units[u].text, float(values[u])) for u in order) or "none"


class SentenceScreen(SwitchRuns, RunMapsScreen):
    """The input's text coloured by the attention the selected token gives: ←/→ token, d gives/gets, j words."""

    PLACE = "sentence"
    # The footer shows this screen's own keys first: all of them do not fit 80 columns (? lists every one).
    BINDINGS = [
        Binding("n", "example(1)", "input+"),
        Binding("p", "example(-1)", "prev input", show=False),
        Binding("right_square_bracket", "head(1)", "head+", show=False),
        Binding("left_square_bracket", "head(-1)", "head-", show=False),
        Binding("right_curly_bracket", "layer(1)", "layer+", show=False),
        Binding("left_curly_bracket", "layer(-1)", "layer-", show=False),
        Binding("h", "mean", "mean"),
        Binding("d", "direction", "to/from"),
        Binding("t", "models", "models"),
        Binding("j", "join", "words"),
        Binding("v", "values", "values", show=False),
        Binding("c", "scale", "scale", show=False),
        Binding("R", "rollout", "rollout", tooltip="attention rollout through every layer ([CLS]'s row first)"),
        *SWITCH_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, np.ndarray | str] = {}
        self.pieces: list[Piece] = []
        self.units: list[Unit] = []
        self.shown_key: tuple | None = None  # the read key (run, input) of the maps and pieces in ``data``, ``pieces``
        #: The selected token: its position in the maps (kept when words are joined or split again).
        self.position = 0
        self.mean = False
        self.direction = "from"
        self.models = "both"
        self.join = False
        self.values = False
        self.absolute = False
        #: Show the attention rollout through every layer instead of one head or layer's map.
        self.rollout = False
        self._rolled: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._pieces: OrderedDict[tuple, list[Piece]] = OrderedDict()

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="sentence-context", classes="context")
        yield SentenceText(id="sentence-text")
        yield Static("", id="sentence-status", classes="status")
        yield from self.compose_footer()

    @property
    def text(self) -> SentenceText:
        return self.query_one(SentenceText)

    # -- loading --------------------------------------------------------------

    def stamp(self) -> tuple:  # the role is not part of it: the view shows both models
        s = self.selection
        return (s.run_id, s.example, *(self.app.versions.get(t, 0) for t in self.DEPENDS))

    def _key(self, example: int) -> tuple:
        return (self.selection.run_id, example, self.app.versions.get("tokens", 0))

    def load_maps(self) -> None:
        s = self.selection
        cached = {role: self.reader.cached(s.run_id, role, s.example) for role in ROLES}
        pieces = self._pieces.get(self._key(s.example))
        if pieces is not None and all(m is not None for m in cached.values()):  # read ahead: no thread hop
            self.maps_loaded(Loaded("example", (self.read_key(), (cached, pieces))))
        else:
            self.load_for("example", read_input, self.reader, s.run_id, s.example)

    def show_error(self, text: str) -> None:
        self.text.show_message(text)

    def redraw(self) -> None:
        self.draw()

    def maps_loaded(self, message: Loaded) -> None:
        key, (data, pieces) = message.value
        if self.left(key):
            return
        self.shown_key, self.data, self.pieces = key, data, pieces
        self._remember(self._key(self.selection.example), pieces)
        self.draw()
        following = self.selection.example + 1
        if self.context is not None and following < self.context.n_examples:
            run_id, key = self.selection.run_id, self._key(following)

            def read_ahead() -> None:  # into the reader's cache and ours, so that `n` shows it at once
                try:
                    self._remember(key, read_input(self.reader, run_id, following)[1])
                except UserError:
                    pass  # shown when the person gets there

            self.run_worker(read_ahead, group="prefetch", exclusive=True, thread=True, exit_on_error=False)

    def _remember(self, key: tuple, pieces: list[Piece]) -> None:
        self._pieces[key] = pieces
        while len(self._pieces) > CACHED_PIECES:
            self._pieces.popitem(last=False)

    # -- drawing --------------------------------------------------------------

    def roles(self) -> tuple[str, ...]:
        return ROLES if self.models == "both" else (self.models,)

    def draw(self) -> None:
        context, s = self.context, self.selection
        if context is None or not self.data:
            return
        if self.left(self.shown_key):  # what is held is of an input or run the cursor has left: its read is under way
            self.query_one("#sentence-context", Static).update(self.reading_line())
            return
        n = next((m.shape[-1] for m in self.data.values() if not isinstance(m, str)), len(self.pieces))
        pieces = self.pieces if len(self.pieces) == n else [Piece(str(i)) for i in range(n)]
        row = context.examples[s.example] if s.example < len(context.examples) else {}
        self.units = units = sentence.units(pieces, (row.get("text_a"), row.get("text_b")), self.join)
        self.position = min(self.position, max(n - 1, 0))
        cursor = sentence.unit_of(units, self.position)
        chosen = units[cursor].text if units else ""
        panes, status = [], []
        for role in self.roles():
            maps = self.data.get(role, "no maps")
            if isinstance(maps, str):
                panes.append(Pane(TITLES[role], message=maps))
                continue
            if self.rollout:
                matrix = self._rolled_out(role, maps)
            else:
                matrix = sentence.head_or_mean(maps, s.layer, None if self.mean else s.head)
            if self.join:
                matrix = sentence.joined(matrix, units)
            values = sentence.vector(matrix, cursor, self.direction)
            high = 1.0 if self.absolute else float(values.max()) or 1.0
            verb = "attention from" if self.direction == "from" else "attention to"
            if self.rollout:
                verb = "rollout from" if self.direction == "from" else "rollout to"
            panes.append(Pane(f"{TITLES[role]} · {verb} “{chosen}” · colours 0..{high:.2f}", values, high))
            other = "to" if self.direction == "from" else "from"
            status.append(f"{SHORT[role]}{' rollout' if self.rollout else ''}: itself [b]{values[cursor]:.3f}[/] · most {other}: "
                          f"{escape(top(values, units, cursor))}")
        if not units:
            self.text.show_message("no tokens stored for this input")
        else:
            self.text.show(units, panes, cursor, self.values)
        which = f"mean of {context.n_heads} heads" if self.mean else f"head [b]{s.head + 1}[/]/{context.n_heads}"
        where = (f"[b]rollout[/] through all {context.n_layers} layers" if self.rollout
                 else f"layer [b]{s.layer + 1}[/]/{context.n_layers} · {which}")
        self.query_one("#sentence-context", Static).update(
            f"{task_seed(context.title, context.seed)} · input [b]{s.example + 1}[/]/{context.n_examples} · L={n} · "
            f"{where} · {self._positions(units, cursor)}"
        )
        self.query_one("#sentence-status", Static).update("\n".join(status) or escape(f"“{chosen}”"))

    @staticmethod
    def _positions(units: list[Unit], cursor: int) -> str:
        pieces = units[cursor].pieces if units else (0,)
        return f"position {pieces[0]}" if len(pieces) == 1 else f"positions {pieces[0]}-{pieces[-1]}"

    def on_sentence_text_cursor_moved(self, message: SentenceText.CursorMoved) -> None:
        if message.unit < len(self.units):
            self.position = self.units[message.unit].pieces[0]
            self.draw()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.data and not self.left(self.shown_key):
            self.draw()  # the layer or head may have been chosen on another screen
        self.text.focus()

    # -- actions --------------------------------------------------------------

    def action_head(self, step: int) -> None:
        if self.context is not None:
            self.mean = False
            self.app.select(head=(self.selection.head + step) % self.context.n_heads)
            self.draw()

    def action_layer(self, step: int) -> None:
        if self.context is not None:
            self.app.select(layer=(self.selection.layer + step) % self.context.n_layers)
            self.draw()

    def action_mean(self) -> None:
        self.mean = not self.mean
        self.draw()

    def action_direction(self) -> None:
        self.direction = "to" if self.direction == "from" else "from"
        self.draw()

    def action_models(self) -> None:
        self.models = MODELS[(MODELS.index(self.models) + 1) % len(MODELS)]
        self.draw()

    def action_join(self) -> None:
        self.join = not self.join
        self.draw()

    def action_values(self) -> None:
        self.values = not self.values
        self.draw()

    def _rolled_out(self, role: str, maps: np.ndarray) -> np.ndarray:
        key = (*self.shown_key, role)
        if key not in self._rolled:
            self._rolled[key] = sentence.rolled_out(maps)
            while len(self._rolled) > CACHED_PIECES:
                self._rolled.popitem(last=False)
        return self._rolled[key]

    def action_rollout(self) -> None:
        """Rollout on: what [CLS] takes from each token after every layer (the cursor goes to [CLS]); off: the head."""
        self.rollout = not self.rollout
        if self.rollout:
            self.position, self.direction = 0, "from"
        self.draw()

    def action_scale(self) -> None:
        self.absolute = not self.absolute
        self.draw()
