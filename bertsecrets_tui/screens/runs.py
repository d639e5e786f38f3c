"""The Runs screen: every task and run in the store, updated while an ingest writes new ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from bertsecrets.core.tasks import SETUPS
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.screens.base import StoreScreen

SHORT_SETUPS = {"finetuned": "fine-tuned", "random_init": "random init", "no_finetuning": "not tuned"}
#: The most telling first: at 80 columns the last ones scroll into view with the arrow keys.
COLUMNS = ("task", "set-up", "metrics", "status", "dev (maps)", "model", "seed", "started")


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


def status_text(run: dict[str, Any]) -> str:
    if run["status"] == "running":
        return f"▶ {run['stage'] or 'starting'}"
    return run["status"] or "-"


def row_of(run: dict[str, Any]) -> tuple[str, ...]:
    maps = run.get("map_examples")
    examples = f"{run['dev_examples'] or 0}" + (f" ({maps})" if maps else "")
    model = (run["model"] or "-").rsplit("/", 1)[-1]
    return (run["task"] or "-", SHORT_SETUPS.get(run["setup"], run["setup"] or "-"), metrics_text(run),
            status_text(run), examples, model, str(run["seed"]), when(run["started_at"]))


class RunsScreen(StoreScreen):
    """Every run in the store; Enter opens the heads of its experiment's fine-tuned run."""

    PLACE = "runs"
    DEPENDS = ("runs", "maps")
    BINDINGS = [Binding("enter", "open", "open run", priority=True)]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("reading the store...", id="runs-note", classes="context")
        table = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table
        yield Static("", id="run-detail", classes="status")
        yield from self.compose_footer()

    def stamp(self) -> tuple:
        return tuple(self.app.versions.get(t, 0) for t in self.DEPENDS)

    def reload(self) -> None:
        self.load("runs", self.reader.runs)

    def on_loaded(self, message: Loaded) -> None:
        note = self.query_one("#runs-note", Static)
        if message.error:
            note.update(Text(message.error, style="red"))
            return
        known = {r["run_id"] for r in self.runs}
        fresh = [r for r in message.value if r["run_id"] not in known]
        if self.runs and fresh:
            self.notify(", ".join(f"{r['task']} {r['setup']}" for r in fresh), title="new runs", markup=False)
        self.runs = message.value
        if self.selection.run_id is None:
            self.app.select(run_id=self.reader.default_run(self.runs))
        self._fill()
        tasks = sorted({r["task"] for r in self.runs})
        note.update(
            f"{len(self.runs)} runs of {len(tasks)} task{'s' if len(tasks) != 1 else ''} ({escape(', '.join(tasks))}); "
            "Enter opens a run" if self.runs else
            "no runs yet: run `bertsecrets ingest mrpc` (this screen shows new runs as they start)"
        )

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        table.clear()
        for run in self.runs:
            table.add_row(*(Text(c) for c in row_of(run)), key=run["run_id"])
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
        detail = (f"{escape(SETUPS.get(run['setup'], run['setup']))} · {escape(run['model'] or '-')} · {escape(run_id)} · "
                  f"{run['n_layers']} layers x {run['n_heads']} heads · lr {run['learning_rate'] or '-'} · "
                  f"{run['epochs']} epochs · max length {run['max_length']} · started {when(run['started_at'], year=True)}")
        if run.get("error"):
            detail += f" · [red]{escape(run['error'])}[/]"
        self.query_one("#run-detail", Static).update(detail)

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
