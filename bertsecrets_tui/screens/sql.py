"""The SQL screen: a person's queries on the catalog in DuckDB's sandbox, beside a tree of its tables and columns.

Names complete as they are typed (Tab), a query runs in a worker thread and
can be cancelled, an error clears the result it replaces, and a result can be
written to CSV or Parquet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from bertsecrets.core import config
from bertsecrets.store.catalog import SQLConsole
from bertsecrets.tui import export
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.screens.base import StoreScreen
from bertsecrets.tui.screens.sql_export import ExportDialog, default_path
from bertsecrets.tui.widgets.history_input import HistoryInput
from bertsecrets.tui.widgets.schema_tree import Entry, SchemaTree, describe
from bertsecrets.tui.widgets.sql_complete import Schema, SQLComplete
from bertsecrets.tui.widgets.tables import fill

#: Rows shown in the table; DataTable slows down with many thousands, and nobody reads them here.
MAX_ROWS = 500
#: A query that takes this long has its time printed with its row count.
SLOW_SECONDS = 1.0
#: The schema tree shows at first where the terminal is at least this wide (ctrl+b shows or hides it).
TREE_FROM_WIDTH = 80

EXAMPLES = (
    ("runs and their dev metrics (Table 1)",
     "SELECT task, setup, model_used, seed, round(100 * f1, 1) AS f1, round(100 * accuracy, 1) AS acc "
     "FROM runs ORDER BY task, setup"),
    ("share of each pattern class (Fig. 2)",
     "SELECT source, role, label, round(100 * avg(share), 1) AS pct FROM class_shares GROUP BY ALL "
     "ORDER BY source, role, pct DESC, label"),
    ("heads that attend most to [CLS]",
     "SELECT layer + 1 AS layer, head + 1 AS head, round(attn_cls, 3) AS cls FROM head_stats "
     "WHERE role = 'finetuned' ORDER BY attn_cls DESC LIMIT 10"),
    ("heads that changed most under fine-tuning (Fig. 5)",
     "SELECT layer + 1 AS layer, head + 1 AS head, round(cosine_mean, 3) AS cosine FROM head_change ORDER BY cosine_mean LIMIT 10"),
    ("disabled heads whose interval excludes 0 (Fig. 8)",
     "SELECT layer + 1 AS layer, head + 1 AS head, metric, round(100 * delta, 2) AS points, round(100 * ci_low, 2) AS low, "
     "round(100 * ci_high, 2) AS high FROM ablation WHERE kind = 'head' AND (ci_low > 0 OR ci_high < 0) ORDER BY delta DESC"),
    ("the longest inputs", "SELECT run_id, example, n_tokens, text_a, text_b FROM examples ORDER BY n_tokens DESC LIMIT 10"),
    ("labels given so far", "SELECT labeller, label, count(*) AS maps FROM labels GROUP BY ALL ORDER BY labeller, maps DESC"),
    ("the catalog's tables", "SHOW TABLES"),
)


def run_query(console: SQLConsole, sql: str) -> dict[str, Any]:
    """A person's query, run in the sandbox: the whole result (for exports), its first MAX_ROWS rows, the time."""
    started = time.monotonic()
    table = console.query(sql)
    shown = table.slice(0, MAX_ROWS)
    return {"sql": sql, "table": table, "columns": table.column_names,
            "rows": [list(r.values()) for r in shown.to_pylist()], "total": table.num_rows,
            "seconds": time.monotonic() - started}


def write_result(console: SQLConsole, result: Any, path: Path, fmt: str) -> Path:
    """Write a result through the console; the exports folder is made when the file goes there."""
    if path.parent == config.exports_path().absolute():
        export.folder(path.parent)
    return console.export(result, path, fmt)


def cell(value: Any) -> Any:
    """A result value as the table shows it: text never read as markup, floats to 6 digits."""
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, int) else Text(str(value))


def rows_text(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


class SQLScreen(StoreScreen):
    """Type a query and press Enter; ↑/↓ walk the history; Tab completes a name; pick an example to start from."""

    PLACE = "sql"
    BINDINGS = [
        Binding("ctrl+s,f2", "export", "export", key_display="^s", tooltip="write the result to a CSV or Parquet file"),
        Binding("ctrl+g", "cancel", "cancel", key_display="^g", tooltip="stop the query that is running"),
        Binding("ctrl+b", "tree", "tables", key_display="^b", tooltip="show or hide the tables and their columns"),
    ]

    def __init__(self) -> None:
        super().__init__()
        # A connection of its own, never the app's: the person's SQL sees a sandboxed copy of the catalog.
        self.sql_console: SQLConsole | None = None
        self.result: dict[str, Any] | None = None  # the result the table shows
        self.running_since: float | None = None
        self.schema = Schema()

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        box = HistoryInput(placeholder="SELECT ... (Enter runs it; Tab completes a name; ↑/↓ history)", id="sql-input")
        yield box
        yield SQLComplete(box, id="sql-complete")
        yield Static("^b: the tables and their columns · Tab completes a name", id="sql-status", classes="status")
        with Horizontal(id="sql-body"):
            with Vertical(id="sql-main"):
                yield DataTable(id="sql-result", zebra_stripes=True)
                yield Static("examples (Enter or click to run one):", classes="note")
                yield OptionList(*(Option(Text(title), id=str(i)) for i, (title, _) in enumerate(EXAMPLES)),
                                 id="sql-examples")
            with Vertical(id="sql-schema"):
                yield SchemaTree(id="sql-tree")
                yield Static("", id="sql-about")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#sql-schema").display = self.app.size.width >= TREE_FROM_WIDTH
        self.load("schema", self.reader.catalog_columns)
        self.set_interval(1.0, self.tick)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.query_one(HistoryInput).focus()

    # -- running a query ----------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit(event.value)

    def submit(self, sql: str) -> None:
        sql = sql.strip()
        if not sql:
            return
        box = self.query_one(HistoryInput)
        box.remember(sql)
        box.value = sql
        if self.sql_console is None:
            self.sql_console = SQLConsole(self.app.store.catalog)
        self.sql_console.interrupt()  # a query still running is superseded: stop it rather than wait for it
        self.running_since = time.monotonic()
        self.tick()
        self.load("query", run_query, self.sql_console, sql)

    def tick(self) -> None:
        """While a query runs: how long it has, and the key that stops it."""
        if self.running_since is not None:
            seconds = time.monotonic() - self.running_since
            self.query_one("#sql-status", Static).update(f"running... {seconds:.0f} s (ctrl+g cancels)")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "sql-examples":
            self.submit(EXAMPLES[int(event.option.id)][1])
            self.query_one(HistoryInput).focus()

    def on_loaded(self, message: Loaded) -> None:
        if message.key == "schema":
            self.schema_loaded(message)
        elif message.key == "query":
            self.query_done(message)
        elif message.key == "export":
            status = self.query_one("#sql-status", Static)
            if message.error:
                status.update(Text(f"not exported: {message.error}", style="red"))
            else:
                path, rows = message.value
                sent = export.deliver(self.app, [path])
                status.update(Text(f"wrote {rows_text(rows)} to {path}" + sent))

    def query_done(self, message: Loaded) -> None:
        self.running_since = None
        status = self.query_one("#sql-status", Static)
        table = self.query_one("#sql-result", DataTable)
        if message.error:
            # The table must not go on showing an older query's rows under this query's error.
            self.result = None
            table.clear(columns=True)
            status.update(Text(message.error, style="red"))
            return
        result = self.result = message.value
        fill(table, result["columns"], [[cell(v) for v in row] for row in result["rows"]])
        total, shown = result["total"], len(result["rows"])
        took = f" in {result['seconds']:.1f} s" if result["seconds"] >= SLOW_SECONDS else ""
        status.update(f"{rows_text(total)}{took}" + (f" (showing the first {shown})" if total > shown else ""))

    # -- the schema tree ----------------------------------------------------

    def schema_loaded(self, message: Loaded) -> None:
        about = self.query_one("#sql-about", Static)
        if message.error:
            about.update(Text(message.error, style="red"))
            return
        self.schema = Schema.from_rows(message.value)
        self.query_one(SQLComplete).schema = self.schema
        self.query_one(SchemaTree).show(self.schema)
        about.update(Text("Enter on a table opens it; on a column, puts its name in the query", style="dim"))

    def on_tree_node_highlighted(self, event: SchemaTree.NodeHighlighted[Entry]) -> None:
        if event.node.data is not None:
            self.query_one("#sql-about", Static).update(Text(describe(event.node.data)))

    def on_schema_tree_chosen(self, message: SchemaTree.Chosen) -> None:
        box = self.query_one(HistoryInput)
        before = box.value[:box.cursor_position]
        gap = " " if before and not before[-1].isspace() and before[-1] not in "(." else ""
        box.insert_text_at_cursor(gap + message.entry.name)
        box.focus()

    # -- keys ---------------------------------------------------------------

    def action_cancel(self) -> None:
        status = self.query_one("#sql-status", Static)
        if self.running_since is None or self.sql_console is None:
            status.update("no query is running")
            return
        self.sql_console.interrupt()
        status.update("cancelling...")

    def action_tree(self) -> None:
        schema = self.query_one("#sql-schema")
        schema.display = not schema.display
        if schema.display:
            self.query_one(SchemaTree).focus()
        else:
            self.query_one(HistoryInput).focus()

    def action_export(self) -> None:
        if self.result is None:
            self.query_one("#sql-status", Static).update("nothing to export: run a query first")
            return
        result = self.result["table"]

        def chosen(answer: tuple[Path, str] | None) -> None:
            if answer is not None and self.sql_console is not None:
                path, fmt = answer
                self.query_one("#sql-status", Static).update(Text(f"writing {path}..."))
                self.load("export", lambda: (write_result(self.sql_console, result, path, fmt), result.num_rows))

        self.app.push_screen(ExportDialog(result.num_rows, default_path(), web=self.app.is_web), chosen)

    def on_unmount(self) -> None:
        if self.sql_console is not None:
            self.sql_console.interrupt()
            self.sql_console.close()
