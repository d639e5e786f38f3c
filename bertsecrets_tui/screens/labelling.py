"""The Labelling screen: a queue of sampled maps; keys 1-5 give the class, saved at once to the catalog.

A map of an input of one sentence (every SST-2 input) is never a block: the
pattern rules give block only where the input holds two sentences, and the
classifiers rule it out there. Its block key is hidden and says so when pressed,
and the panel of the classes' examples leaves block out.

A label is stored only for the map the person sees: the map and the examples
are read with the item (and the run) they are of, a late result for an item the
queue has left is dropped, and while the current item's map is read the label
keys store nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from bertsecrets.core.tasks import TASKS
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded, StoreChanged
from bertsecrets.tui.reader import Reader, RunContext
from bertsecrets.tui.sampling import MapKey, Source, label_queue
from bertsecrets.tui.screens.base import StoreScreen
from bertsecrets.tui.screens.map import example_line
from bertsecrets.tui.widgets.heatmap import Heatmap
from bertsecrets.tui.widgets.references import ClassReferences
from bertsecrets.store import queries
from bertsecrets.store.labels import PATTERN_CLASSES, Labels


@dataclass
class Step:
    """One thing the labeller did, so that undo can take it back."""

    position: int  # in the queue
    key: MapKey
    label: str | None  # None: skipped (or, as a write, a label taken back)


def read_queue(reader: Reader, labeller: str) -> dict[str, Any]:
    """The queue for ``labeller`` and the class counts (theirs and everyone's)."""
    runs = [r for r in reader.runs() if r["map_sets"]]
    sources = [Source(r["run_id"], r["task"], int(r["map_examples"] or 0), int(r["n_layers"]), int(r["n_heads"]))
               for r in runs]
    mine = queries.given_labels(reader.store, labeller=labeller)
    done = {MapKey(r["run_id"], r["role"], r["example"], r["layer"], r["head"]) for r in mine}
    counts = queries.label_counts(reader.store, labeller)
    queue = label_queue(sources, done, labeller)
    return {"queue": queue, "counts": {r["label"]: (r["mine"], r["n"]) for r in counts},
            "tasks": {r["run_id"]: r["task"] for r in runs},
            "two": {run_id: reader.two_sentences(run_id) for run_id in {k.run_id for k in queue}}}


def read_map(reader: Reader, key: MapKey) -> tuple[RunContext, np.ndarray]:
    return reader.context(key.run_id), reader.example(key.run_id, key.role, key.example)[key.layer, key.head]


#: The classes as the key bar names them: short enough that all five keys and the screen's others fit 80 columns.
SHORT = {"vertical": "vert", "diagonal": "diag", "vertical+diagonal": "v+d", "block": "block",
         "heterogeneous": "hetero"}
BLOCK = PATTERN_CLASSES.index("block")
#: What the block key says on a map of an input of one sentence.
NO_BLOCK = "no block on this map: its input has one sentence, and a block needs two (pick another class, or skip)"
#: What a label key says while the map of the current item is read (or could not be read).
READING = "not labelled: this map is still being read (press the key again once it shows)"
UNREAD = "not labelled: this map could not be read (skip it with space)"


class LabellingScreen(StoreScreen):
    """Label sampled maps with the paper's five pattern classes: 1-5 label, space skips, u undoes."""

    PLACE = "label"
    DEPENDS = ("runs", "maps")
    BINDINGS = [
        *(Binding(str(i + 1), f"label({i})", SHORT[name]) for i, name in enumerate(PATTERN_CLASSES)),
        # Reached only when the block key above is refused (check_action): says why instead of doing nothing.
        Binding(str(BLOCK + 1), "no_block", "block", show=False,
                tooltip="on an input of one sentence: says that a block needs two sentences"),
        Binding("space", "skip", "skip"),
        Binding("u,backspace", "undo", "undo"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[MapKey] = []
        self.position = 0
        self.history: list[Step] = []
        self.counts: dict[str, list[int]] = {}
        self.tasks: dict[str, str] = {}
        self.two: dict[str, np.ndarray] = {}  # by run: [example] the input holds two sentences
        self.shown: MapKey | None = None
        #: The item whose map the heatmap holds (another than ``shown`` while the current one is read), and whether
        #: the current item's read failed.
        self.map_key: MapKey | None = None
        self.map_failed = False
        self.saving = 0  # label changes not yet written
        self._writes: deque[Step] = deque()
        self._writes_lock = threading.Lock()
        self._writing = False
        #: The run whose class references are shown (or being read), and per class its map's row and matrix (None
        #: while they are read), and the classes the panel shows now.
        self.references_of: str | None = None
        self.references: dict[str, tuple[dict[str, Any], np.ndarray]] | None = None
        self.references_shown: tuple[str, ...] = ()

    @property
    def labeller(self) -> str:
        return self.app.labeller

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="label-context", classes="context")
        yield Static("", id="label-text", classes="context")
        with Horizontal():
            yield Heatmap(id="label-map")
            with Vertical(classes="side"):
                yield Static("", id="label-side")
                yield Static("", id="label-references-note", classes="note")
                yield ClassReferences(id="label-references")
        yield Static("", id="label-status", classes="status")
        yield from self.compose_footer()

    def stamp(self) -> tuple:
        return tuple(self.app.versions.get(t, 0) for t in self.DEPENDS)

    def reload(self) -> None:
        self.load("queue", read_queue, self.reader, self.labeller)

    def on_loaded(self, message: Loaded) -> None:
        heatmap = self.query_one(Heatmap)
        if message.key == "references":
            self.show_references(message)
            return
        if message.key == "saved":
            self.saving -= 1
            if message.error:
                self.notify(message.error, title="label not saved", severity="error", markup=False)
            self.describe()
            return
        if message.error:
            if self.failed_here(message):
                self.map_failed = message.key == "map"
                heatmap.show_message(message.error)
            return
        if message.key == "queue":
            self.queue, self.tasks, self.two = message.value["queue"], message.value["tasks"], message.value["two"]
            self.counts = {label: list(message.value["counts"].get(label, (0, 0))) for label in PATTERN_CLASSES}
            self.position, self.history = 0, []
            self.show_current()
        elif message.key == "map":
            key, (context, matrix) = message.value
            if self.left(key):
                return  # read for an item the queue has left: the current item's read is under way
            self.map_key = key
            tokens = context.tokens[key.example] if key.example < len(context.tokens) else []
            heatmap.show(matrix, tokens, 0.0, float(matrix.max()) or 1.0)
            self.query_one("#label-text", Static).update(example_line(context, key.example))
            self.describe()

    def read_key(self) -> MapKey | None:
        return self.shown

    def one_sentence(self, key: MapKey | None) -> bool:
        """Whether the map ``key`` is of an input of one sentence (where its tokens are not stored, its task says)."""
        if key is None:
            return False
        two = self.two.get(key.run_id)
        if two is not None and key.example < len(two):
            return not two[key.example]
        task = TASKS.get(self.tasks.get(key.run_id, ""))
        return task is not None and not task.pair

    def offered(self) -> list[str]:
        """The classes the map shown can be given."""
        return [c for c in PATTERN_CLASSES if c != "block" or not self.one_sentence(self.shown)]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "label" and parameters == (BLOCK,):
            return not self.one_sentence(self.shown)  # False: hidden from the key bar, the key goes to no_block
        if action == "no_block":
            return self.one_sentence(self.shown)
        return super().check_action(action, parameters)

    def show_current(self) -> None:
        heatmap = self.query_one(Heatmap)
        self.shown = self.queue[self.position] if self.position < len(self.queue) else None
        self.refresh_bindings()  # the block key comes and goes with the number of sentences of the map's input
        if self.shown is None:
            heatmap.show_message("nothing to label: no maps in the store yet, or you labelled every sampled one"
                                 if not self.queue else "end of the queue: come back for more (r, then l)")
            self.describe()
            return
        self.map_failed = False
        self.load_for("map", read_map, self.reader, self.shown)
        self.describe()  # the item's place and class counts now; its map when read
        if self.shown.run_id != self.references_of:
            self.load_references(self.shown.run_id)
        elif tuple(self.offered()) != self.references_shown:
            self.draw_references()  # block comes and goes with the number of sentences, as on the list
        heatmap.focus()

    def describe(self) -> None:
        key = self.shown
        reading = key is not None and self.left(self.map_key)
        where = "" if key is None else (
            f"[b]{escape(self.tasks.get(key.run_id, '?').upper())}[/] · {escape(key.role)} · input {key.example + 1} · "
            f"layer [b]{key.layer + 1}[/] · head [b]{key.head + 1}[/] · " + ("reading the map… · " if reading else "")
        )
        self.query_one("#label-context", Static).update(
            f"{where}map {self.position + 1} of {len(self.queue)} · labeller [b]{escape(self.labeller)}[/]"
        )
        lines = ["[b]key class  yours / all[/]"]
        offered = self.offered()
        for i, label in enumerate(PATTERN_CLASSES):
            if label not in offered:
                continue
            mine, everyone = self.counts.get(label, [0, 0])
            lines.append(f" {i + 1}  {label:<18} {mine:>4} / {everyone}")
        lines.append("space skip · u undo")
        if self.history:
            last = self.history[-1]
            lines.append(f"last: {last.label or 'skipped'} (L{last.key.layer + 1} H{last.key.head + 1})")
        if self.saving:
            lines.append("saving...")
        self.query_one("#label-side", Static).update("\n".join(lines))
        heatmap = self.query_one(Heatmap)
        if reading:  # the heatmap holds the map of the item before: its values are not this item's
            self.query_one("#label-status", Static).update("")
        elif heatmap.matrix is not None:
            q, k = heatmap.cursor
            self.query_one("#label-status", Static).update(
                f"query {q} [b]{escape(heatmap.tokens[q])}[/] → key {k} [b]{escape(heatmap.tokens[k])}[/] · "
                f"[b]{heatmap.matrix[q, k]:.3f}[/] (colours 0..{heatmap.high:.3f})"
            )

    def on_heatmap_cursor_moved(self, message: Heatmap.CursorMoved) -> None:
        self.describe()

    # -- labelling ------------------------------------------------------------

    def action_label(self, index: int) -> None:
        if self.shown is None:
            return
        if self.left(self.map_key):  # the person has not seen this item's map: a label would be of another
            self.notify(UNREAD if self.map_failed else READING, severity="warning", markup=False)
            return
        label = PATTERN_CLASSES[index]
        if label not in self.offered():
            self.action_no_block()
            return
        self._count(label, +1)
        self._advance(Step(self.position, self.shown, label))

    def action_no_block(self) -> None:
        self.notify(NO_BLOCK, severity="warning", markup=False)

    def action_skip(self) -> None:
        if self.shown is not None:
            self._advance(Step(self.position, self.shown, None))

    def action_undo(self) -> None:
        if not self.history:
            self.notify("nothing to undo")
            return
        step = self.history.pop()
        if step.label is not None:  # the queue holds maps the labeller had not labelled: undo removes
            self._count(step.label, -1)
            self._save(Step(step.position, step.key, None))
        self.position = step.position
        self.show_current()

    def _advance(self, step: Step) -> None:
        self.history.append(step)
        if step.label is not None:
            self._save(step)
        self.position += 1
        self.show_current()

    def _count(self, label: str | None, change: int) -> None:
        if label in self.counts:
            self.counts[label][0] += change
            self.counts[label][1] += change

    # -- saving: in order, off the event loop -----------------------------------

    def _save(self, step: Step) -> None:
        """Queue a label change (``step.label`` None: remove the label); one worker writes them in order."""
        self.saving += 1
        with self._writes_lock:
            self._writes.append(step)
            if self._writing:
                return
            self._writing = True
        self.run_worker(self._write_all, group="label-writes", thread=True, exit_on_error=False)

    def _write_all(self) -> None:
        labels = Labels(self.app.store)
        while True:
            with self._writes_lock:
                if not self._writes:
                    self._writing = False
                    return
                step = self._writes.popleft()
            k = step.key
            try:
                if step.label is None:
                    labels.remove(k.run_id, k.role, k.example, k.layer, k.head, labeller=self.labeller)
                else:
                    labels.set(k.run_id, k.role, k.example, k.layer, k.head, step.label, labeller=self.labeller)
                self.post_message(Loaded("saved", step))
            except Exception as exc:  # a full disk, a store made read-only: say so, keep labelling
                self.post_message(Loaded("saved", error=" ".join(str(exc).split())))

    # -- references: the rules' clearest map of each class ------------------------

    def load_references(self, run_id: str) -> None:
        self.references_of, self.references, self.references_shown = run_id, None, ()
        self.query_one("#label-references-note", Static).update("")
        self.query_one(ClassReferences).show_message("loading examples...")
        self.load_keyed("references", run_id, self.reader.class_references, run_id)

    def show_references(self, message: Loaded) -> None:
        if message.error:
            if message.read_key == self.references_of:  # not a failed read of a run the queue has left
                self.query_one(ClassReferences).show_message(message.error)
            return
        run_id, found = message.value
        if run_id != self.references_of:
            return  # read for a run the queue has left: the current run's read is under way
        self.references = found
        self.draw_references()

    def draw_references(self) -> None:
        """One example per class the map shown can be given (no block on an input of one sentence)."""
        found = self.references
        if found is None:
            return
        widget = self.query_one(ClassReferences)
        note = self.query_one("#label-references-note", Static)
        classes = self.offered()
        self.references_shown = tuple(classes)
        if not found:
            task = self.tasks.get(self.references_of or "", "the task")
            note.update("")
            widget.show_message(f"no rule labels in this run yet: examples of each class come with "
                                f"`bertsecrets analyze {task}`")
            return
        widget.show_maps([found[c][1] if c in found else None for c in classes], classes)
        missing = [c for c in classes if c not in found]
        note.update("examples: the rules' surest" + (f" (none {escape(', '.join(missing))})" if missing else "")
                    + "\neach coloured 0..its own maximum")

    def on_store_changed(self, message: StoreChanged) -> None:
        super().on_store_changed(message)
        if "map_classes" in message.tables and self.references_of is not None:
            self.load_references(self.references_of)
