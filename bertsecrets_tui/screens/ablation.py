"""The Ablation screen: what disabling each head or layer does to the dev metric, with intervals; Table 1."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import SETUPS, get_task
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.reader import RunStats
from bertsecrets.tui.scales import RANGE_BINDINGS, FixedRange
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, TAB_BINDINGS, StoreScreen, SwitchRuns, Tabs, task_seed
from bertsecrets.tui.stats import STATS, change_text, distinct, fmt, stat_grid
from bertsecrets.tui.widgets.grid import HeadGrid
from bertsecrets.tui.widgets.tables import fill

ABLATION = next(s for s in STATS if s.key == "ablation")
ALL_COLUMNS = ("kind", "layer", "head", "metric", "value", "delta", "ci_low", "ci_high", "changed", "n_examples")
SETUP_ORDER = ("no_finetuning", "random_init", "finetuned")


def one_based(value: int | None) -> str:
    return "-" if value is None else str(value + 1)


class AblationScreen(FixedRange, Tabs, SwitchRuns, StoreScreen):
    """Disabling heads and layers (the paper's section 4.6), the run's Table 1, and every row, sortable."""

    PLACE = "ablation"
    DEPENDS = ("ablation", "ablation_seeds", "pruning", "head_importance", "runs")
    BINDINGS = [
        Binding("x", "metric", "metric"),
        *TAB_BINDINGS,
        Binding("o", "sort(1)", "sort", key_display="o/O", tooltip="sort every row by the next column (again on a header: reverse)"),
        Binding("O", "sort(-1)", "sort by the previous column", show=False),
        *RANGE_BINDINGS,
        *SWITCH_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stats: RunStats | None = None
        self.metric: str | None = None
        self.sort_column = -1
        self.sort_reverse = False
        self.fitted_high: float | None = None  # the heads grid's fitted range (± this)

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="ablation-context", classes="context")
        with TabbedContent(id="ablation-tabs"):
            with TabPane("Heads", id="tab-heads"):
                with Horizontal():
                    yield HeadGrid(id="ablation-grid")
                    yield Static("", id="ablation-side", classes="side")
            with TabPane("Layers", id="tab-layers"):
                yield from self.compose_table("ablation-layers")
            with TabPane("Table 1", id="tab-table1"):
                yield DataTable(id="ablation-table1", zebra_stripes=True)
                yield Static("", id="table1-note", classes="note")
            with TabPane("All rows", id="tab-all"):
                yield from self.compose_table("ablation-all", cursor_type="row")
            with TabPane("Seeds", id="tab-seeds"):
                yield from self.compose_table("ablation-seeds")
            with TabPane("Pruning", id="tab-pruning"):
                yield from self.compose_table("ablation-pruning")
        yield Static("", id="ablation-note", classes="status")
        yield from self.compose_footer()

    @staticmethod
    def compose_table(id: str, cursor_type: str = "cell") -> ComposeResult:
        """A table, and the line that says what to run in its place while it has no rows."""
        yield Static("", id=f"{id}-empty", classes="note")
        yield DataTable(id=id, zebra_stripes=True, cursor_type=cursor_type)

    def reload(self) -> None:
        if self.selection.run_id is None:
            self.query_one(HeadGrid).show_message(self.no_run())
            return
        self.load("stats", self.reader.run_stats, self.selection.run_id)

    def on_loaded(self, message: Loaded) -> None:
        if message.error:
            self.query_one(HeadGrid).show_message(message.error)
            return
        self.stats = message.value
        self.draw()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        grid = self.query_one(HeadGrid)
        grid.move_cursor(self.selection.layer, self.selection.head, announce=False)
        if self.query_one(TabbedContent).active == "tab-heads":
            grid.focus()

    def rows(self, kind: str) -> list[dict[str, Any]]:
        assert self.stats is not None
        return [r for r in self.stats.rows("ablation") if r.get("kind") == kind and r.get("metric") == self.metric]

    def draw(self) -> None:
        stats = self.stats
        if stats is None:
            return
        metrics = distinct(stats, "ablation", "metric")
        if self.metric not in metrics:
            self.metric = metrics[0] if metrics else None
        missing = f"disabling heads: not computed yet: run `bertsecrets ablate {stats.task}`"
        baseline = self.rows("baseline")
        self.query_one("#ablation-context", Static).update(
            # The run id goes last: at 80 columns the line is cut there, not in the numbers.
            f"{task_seed(stats.title, stats.seed)} · metric [b]{escape(self.metric or '-')}[/]"
            + (f" (x: {escape(', '.join(metrics))})" if len(metrics) > 1 else "")
            + (f" · baseline [b]{100 * baseline[0]['value']:.1f}[/] on {baseline[0]['n_examples']} dev" if baseline else "")
            + f" · {escape(stats.run_id)}"
        )
        grid, _ = stat_grid(ABLATION, stats, self.metric, "finetuned")
        widget = self.query_one(HeadGrid)
        self.fitted_high = None if grid is None else grid.high
        if grid is None:
            widget.show_message(missing)
            widget.border_subtitle = ""
        else:
            grid = self.show_on_range(widget, grid)
        self.query_one("#ablation-note", Static).update(
            "changes in percentage points of the metric, 95% paired bootstrap interval; * = interval excludes 0"
            if grid is not None else missing
        )
        self.describe()
        self.fill_layers()
        self.fill_table1()
        self.fill_all()
        self.fill_seeds()
        self.fill_pruning()

    def fitted_span(self) -> float | None:
        return self.fitted_high

    def draw_range(self) -> None:
        self.draw()

    def describe(self) -> None:
        if self.stats is None or self.metric is None:
            self.query_one("#ablation-side", Static).update("")
            return
        layer, head = self.selection.layer, self.selection.head
        row = next((r for r in self.rows("head") if r["layer"] == layer and r["head"] == head), None)
        layer_row = next((r for r in self.rows("layer") if r["layer"] == layer), None)
        importance = next((r for r in self.stats.rows("head_importance") if r["layer"] == layer and r["head"] == head), None)
        lines = [f"[b]layer {layer + 1} · head {head + 1}[/] disabled"]
        if row:
            lines += [f"{escape(self.metric)}: {100 * row['value']:.1f}", f"change: [b]{change_text(row)}[/]",
                      f"predictions changed: {row['changed']} of {row['n_examples']}"]
        else:
            lines.append("no result for this head")
        if layer_row:
            lines.append(f"whole layer {layer + 1}: {change_text(layer_row)}")
        if importance:
            lines.append(f"importance: {fmt(importance['importance'], 4)} (rank {importance['rank']})")
        self.query_one("#ablation-side", Static).update("\n".join(lines))

    def _table(self, id: str, columns: tuple[str, ...], rows: list[tuple], empty: str = "",
               marks: dict[str, str] | None = None) -> DataTable:
        """Fill table ``id``; without rows, hide it and say ``empty`` (what to run) in its place."""
        table = self.query_one(f"#{id}", DataTable)
        fill(table, columns, rows, marks)
        note = self.query(f"#{id}-empty")
        if note:
            note.first(Static).update(escape(empty) if not rows else "")
            note.first(Static).display = not rows
            table.display = bool(rows)
        return table

    def missing(self) -> str:
        return f"not computed yet: run `bertsecrets ablate {self.stats.task if self.stats else '<task>'}`"

    def fill_layers(self) -> None:
        rows = sorted(self.rows("layer"), key=lambda r: r["layer"])
        self._table("ablation-layers", ("layer disabled", self.metric or "metric", "change [95% CI]", "changed"),
                    [(one_based(r["layer"]), f"{100 * r['value']:.1f}", change_text(r), str(r["changed"])) for r in rows],
                    empty=f"disabling layers: {self.missing()}")

    def fill_table1(self) -> None:
        """The paper's Table 1 for this run's task: the three set-ups' dev metrics in %, beside the paper's."""
        stats = self.stats
        assert stats is not None
        try:
            task = get_task(stats.task)
        except UserError:  # a task this version does not know: no paper numbers to show
            task = None
        metrics = [m for m in ("f1", "accuracy", "pearson", "spearman") if any(s.get(m) is not None for s in stats.setups)]
        by_setup = {s["setup"]: s for s in stats.setups}
        rows = []
        for setup in SETUP_ORDER:
            run = by_setup.get(setup)
            cells = [("-" if run is None or run.get(m) is None else f"{100 * run[m]:.1f}") for m in metrics]
            rows.append((SETUPS[setup], *cells, task.paper(setup) if task else "-", run["status"] if run else "not run"))
        paper = "paper (" + "/".join(task.metrics) + ")" if task else "paper"
        self._table("ablation-table1", ("set-up", *metrics, paper, "status"), rows)
        self.query_one("#table1-note", Static).update(
            f"{escape(stats.task.upper())} dev, this model and seed; the paper's numbers are for bert-base-uncased"
        )

    def fill_all(self) -> None:
        stats = self.stats
        assert stats is not None
        rows = [r for r in stats.rows("ablation") if r.get("metric") == self.metric]
        sorted_by = ALL_COLUMNS[self.sort_column] if 0 <= self.sort_column < len(ALL_COLUMNS) else None
        table = self._table("ablation-all", ALL_COLUMNS, [
            (r["kind"], one_based(r["layer"]), one_based(r["head"]), r["metric"], _num(r["value"]), _num(r["delta"]),
             _num(r["ci_low"]), _num(r["ci_high"]), r["changed"], r["n_examples"]) for r in rows
        ], empty=f"disabling heads and layers: {self.missing()}",
            marks={sorted_by: "▼" if self.sort_reverse else "▲"} if sorted_by else None)
        if sorted_by is not None:
            table.sort(ALL_COLUMNS[self.sort_column], key=_sort_key, reverse=self.sort_reverse)

    def fill_seeds(self) -> None:
        stats = self.stats
        assert stats is not None
        self._table("ablation-seeds", ("kind", "layer", "head", "metric", "mean", "std", "change mean", "change std", "seeds"), [
            (r["kind"], one_based(r["layer"]), one_based(r["head"]), r["metric"], _pct(r["mean"]), _pct(r["std"]),
             _pct(r["delta_mean"]), _pct(r["delta_std"]), str(r["n_seeds"])) for r in stats.seeds
        ], empty=f"no results across fine-tuning seeds yet: run `bertsecrets ablate {stats.task} --seeds 3` "
                 "(fine-tunes seeds 0..2 and reports each configuration's mean ± std)")

    def fill_pruning(self) -> None:
        stats = self.stats
        assert stats is not None
        rows = sorted(stats.rows("pruning"), key=lambda r: (r["metric"], r["fraction"]))
        self._table("ablation-pruning", ("heads disabled", "fraction", "metric", "value"), [
            (str(r["n_disabled"]), f"{100 * r['fraction']:.0f}%", r["metric"], _pct(r["value"])) for r in rows
        ], empty=f"pruning curve: {self.missing()}")

    # -- interaction ------------------------------------------------------------

    def on_head_cursor_moved(self, message: HeadGrid.Moved) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.describe()

    def on_head_cursor_chosen(self, message: HeadGrid.Chosen) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.app.action_goto("map")

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.data_table.id == "ablation-all":
            column = ALL_COLUMNS.index(str(event.column_key.value))
            self.sort_reverse = not self.sort_reverse if column == self.sort_column else False
            self.sort_column = column
            self.fill_all()

    def action_sort(self, step: int) -> None:
        self.query_one(TabbedContent).active = "tab-all"
        self.sort_column = (self.sort_column + step) % len(ALL_COLUMNS)
        self.sort_reverse = False
        self.fill_all()
        self.notify(f"sorted by {ALL_COLUMNS[self.sort_column]}, ascending (click a header to sort by it; again to reverse)")

    def action_metric(self) -> None:
        metrics = distinct(self.stats, "ablation", "metric") if self.stats else []
        if metrics:
            self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics) if self.metric in metrics else 0]
            self.draw()


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _sort_key(value: Any) -> tuple:
    """Numbers by value, text after them, missing last."""
    if isinstance(value, Text):
        value = value.plain
    if isinstance(value, (int, float)):
        return (0, value, "")
    if value in ("-", None):
        return (2, 0, "")
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0, str(value))
