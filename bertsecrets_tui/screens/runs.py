"""The Runs screen: every task and run in the store, updated while an ingest writes new ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from bertsecrets.core.tasks import SETUPS
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, StoreScreen, SwitchRuns

SHORT_SETUPS = {"finetuned": "fine-tuned", "random_init": "random init", "no_finetuning": "not tuned"}
COLUMNS = ("task", "set-up", "metrics", "status", "dev (maps)", "model", "seed", "started")
#: Left out first when the table is wider than the screen: the line under the table names them for the run.
#: The task goes before the start time, but only while every run is of one task (the line above names it).
DROP_ORDER = ("model", "seed", "dev (maps)", "task", "started")
#: The steps after a fine-tuned run's maps, by the table each writes, in the order they land.
POST_STEPS = (("head_stats", "analyses"), ("classifiers", "classifiers"), ("ablation", "ablation"),
              ("head_importance", "importance"), ("pruning", "pruning"))


def metrics_text(run: dict[str, Any]) -> str:
    """The dev metrics in %, as the paper prints them ("F1/acc" for MRPC and QQP)."""
    parts = []
    if run.get("f1") is not None:
        parts.append(f"F1 {100 * run['f1']:.1f}")
    if run.get("accuracy") is not None:
        parts.append(f"acc {100 * run['accuracy']:.1f}")
    if run.get("pearson") is not None:
        parts.append(f"r {100 * run['pearson']:.1f}")
    if run.get("spearman") is not None:
        parts.append(f"ρ {100 * run['spearman']:.1f}")
    return " ".join(parts) or "-"


def when(value: dt.datetime | None, year: bool = False) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M" if year else "%m-%d %H:%M")


def waiting_steps(run: dict[str, Any], landed: list[str]) -> list[str]:
    """The steps after a finished run's maps whose tables hold none of its rows yet (none for runs without maps)."""
    if run["status"] != "done" or not run.get("map_sets"):
        return []
    return [name for table, name in POST_STEPS if table not in landed]


def status_text(run: dict[str, Any], landed: list[str] | None = None) -> str:
    """The run's own stage while it runs; once done, the first step after its maps still to land (▷), if any.

    ``landed`` None: the steps' tables are not read yet, so nothing is said of them.
    """
    if run["status"] == "running":
        return f"▶ {run['stage'] or 'starting'}"
    waiting = [] if landed is None else waiting_steps(run, landed)
    if waiting:
        return f"▷ {waiting[0]}"
    return run["status"] or "-"


def steps_text(run: dict[str, Any], landed: list[str] | None) -> str:
    """Each step after the maps, ✓ when its rows are in the catalog, with what to run for the others."""
    if landed is None or run["status"] != "done" or not run.get("map_sets"):
        return ""
    waiting = waiting_steps(run, landed)
    marks = " ".join(f"{name} {'–' if name in waiting else '✓'}" for _, name in POST_STEPS)
    if not waiting:
        return f"after the maps: {marks}"
    command = "analyze" if {"analyses", "classifiers"} & set(waiting) else "ablate"
    return f"after the maps: {marks} (– running, or run `bertsecrets {command} {run['task']}`)"


def row_of(run: dict[str, Any], landed: list[str] | None = None) -> tuple[str, ...]:
    maps = run.get("map_examples")
    examples = f"{run['dev_examples'] or 0}" + (f" ({maps})" if maps else "")
    model = (run["model"] or "-").rsplit("/", 1)[-1]
    return (run["task"] or "-", SHORT_SETUPS.get(run["setup"], run["setup"] or "-"), metrics_text(run),
            status_text(run, landed), examples, model, str(run["seed"]), when(run["started_at"]))


def shown_columns(rows: list[tuple[str, ...]], width: int) -> list[int]:
    """Indices of the columns that fit ``width`` cells (each as wide as its widest cell, plus DataTable's
    padding of one on each side), leaving out those of DROP_ORDER first."""
    widths = [max([len(name), *(len(row[i]) for row in rows)]) + 2 for i, name in enumerate(COLUMNS)]
    shown = list(range(len(COLUMNS)))
    one_task = len({row[COLUMNS.index("task")] for row in rows}) <= 1
    for name in DROP_ORDER:
        if sum(widths[i] for i in shown) <= width:
            break
        if name != "task" or one_task:
            shown.remove(COLUMNS.index(name))
    return shown


class RunsScreen(SwitchRuns, StoreScreen):
    """Every run in the store; Enter opens the heads of its experiment's fine-tuned run."""

    PLACE = "runs"
    DEPENDS = ("runs", "maps", *(table for table, _ in POST_STEPS))
    BINDINGS = [Binding("enter", "open", "open run", priority=True), *SWITCH_BINDINGS]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict[str, Any]] = []
        self.landed: dict[str, list[str]] = {}
        self._columns: list[int] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("reading the store...", id="runs-note", classes="context")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="run-detail", classes="status")
        yield from self.compose_footer()

    def stamp(self) -> tuple:
        return tuple(self.app.versions.get(t, 0) for t in self.DEPENDS)

    def reload(self) -> None:
        # Two reads, one after the other: the runs show as soon as they are read, the steps' marks follow
        # (each read opens its thread's catalog connection; two at once would slow the first screen).
        self.load("runs", self.reader.runs)

    def on_loaded(self, message: Loaded) -> None:
        note = self.query_one("#runs-note", Static)
        if message.error:
            note.update(Text(message.error, style="red"))
            return
        if message.key == "steps":
            self.landed = message.value
            if self.runs:
                self._fill()
            return
        runs = message.value
        self.load("steps", self.reader.tables_with_rows, tuple(table for table, _ in POST_STEPS))
        known = {r["run_id"] for r in self.runs}
        fresh = [r for r in runs if r["run_id"] not in known]
        if self.runs and fresh:
            self.notify(", ".join(f"{r['task']} {r['setup']}" for r in fresh), title="new runs", markup=False)
        self.runs = runs
        if self.selection.run_id is None:
            self.app.select(run_id=self.reader.default_run(self.runs))
        self._fill()
        tasks = sorted({r["task"] for r in self.runs})
        note.update(
            f"{len(self.runs)} runs of {len(tasks)} task{'s' if len(tasks) != 1 else ''} ({escape(', '.join(tasks))}); "
            "Enter opens a run" if self.runs else
            "no runs yet: run `bertsecrets ingest mrpc` (this screen shows new runs as they start)"
        )

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        if self.runs and self._columns != shown_columns(self._rows(), self._room()):
            self._fill()

    def _rows(self) -> list[tuple[str, ...]]:
        return [row_of(run, self.landed.get(run["run_id"])) for run in self.runs]

    def _room(self) -> int:
        return self.query_one(DataTable).scrollable_content_region.width or self.app.size.width

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        rows = self._rows()
        self._columns = shown = shown_columns(rows, self._room())
        table.clear(columns=True)
        for i in shown:
            table.add_column(COLUMNS[i], key=COLUMNS[i], width=max([len(COLUMNS[i]), *(len(r[i]) for r in rows)]))
        for run, row in zip(self.runs, rows):
            table.add_row(*(Text(row[i]) for i in shown), key=run["run_id"])
        target = current or self.selection.run_id
        if target is not None and target in {r["run_id"] for r in self.runs}:
            table.move_cursor(row=table.get_row_index(target))
        self._describe()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe()

    def highlighted(self) -> dict[str, Any] | None:
        """The run under the table's cursor."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        run_id = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next(r for r in self.runs if r["run_id"] == run_id)

    def _describe(self) -> None:
        run = self.highlighted()
        if run is None:
            return
        run_id = run["run_id"]
        steps = steps_text(run, self.landed.get(run_id))
        detail = (f"{escape(SETUPS.get(run['setup'], run['setup']))} · {escape(run['model'] or '-')} · seed {run['seed']} · "
                  f"started {when(run['started_at'], year=True)}" + (f" · {escape(steps)}" if steps else "")
                  + f" · {escape(run_id)} · {run['n_layers']} layers x {run['n_heads']} heads · lr {run['learning_rate'] or '-'}"
                  f" · {run['epochs']} epochs · max length {run['max_length']}")
        if run.get("error"):
            detail += f" · [red]{escape(run['error'])}[/]"
        self.query_one("#run-detail", Static).update(detail)

    def current_run(self) -> str | None:
        run = self.highlighted()
        return run["run_id"] if run is not None else self.selection.run_id

    def run_switched(self) -> None:
        """The task and seed keys move the table's cursor to the run they chose."""
        table = self.query_one(DataTable)
        if self.selection.run_id in {r["run_id"] for r in self.runs}:
            table.move_cursor(row=table.get_row_index(self.selection.run_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        """Open the chosen run's heads: its experiment's fine-tuned run, which holds the maps."""
        run = self.highlighted()
        if run is None:
            return
        if not run["map_sets"]:
            with_maps = [r for r in self.runs if r["experiment_id"] == run["experiment_id"] and r["map_sets"]]
            if with_maps:
                self.notify(f"{run['setup']} runs keep no maps: showing the fine-tuned run {with_maps[0]['run_id']}",
                            markup=False)
                run = with_maps[0]
        self.app.select(run_id=run["run_id"])
        self.app.action_goto("heads")
