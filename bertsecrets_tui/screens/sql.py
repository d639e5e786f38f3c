"""The SQL screen: a person's queries on the catalog in DuckDB's sandbox, with history, capped results and errors in place."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.screens.base import StoreScreen
from bertsecrets.tui.widgets.history_input import HistoryInput
from bertsecrets.tui.widgets.tables import fill
from bertsecrets.store.catalog import SQLConsole

#: Rows shown in the table; DataTable slows down with many thousands, and nobody reads them here.
MAX_ROWS = 500

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
    """A person's query, run in the sandbox: the first MAX_ROWS rows, the columns and the row count."""
    table = console.query(sql)
    shown = table.slice(0, MAX_ROWS)
    return {"columns": table.column_names, "rows": [list(r.values()) for r in shown.to_pylist()], "total": table.num_rows}


def cell(value: Any) -> Any:
    """A result value as the table shows it: text never read as markup, floats to 6 digits."""
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, int) else Text(str(value))


class SQLScreen(StoreScreen):
    """Type a query and press Enter; ↑/↓ walk the history; pick an example below to start from."""

    PLACE = "sql"

    def __init__(self) -> None:
        super().__init__()
        # A connection of its own, never the app's: the person's SQL sees a sandboxed copy of the catalog.
        self.sql_console: SQLConsole | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield HistoryInput(placeholder="SELECT ... (Enter runs it; ↑/↓ history; the catalog is read-only)", id="sql-input")
        yield Static("tables: runs, examples, tokens, maps, labels and the analyses' (SHOW TABLES lists them)",
                     id="sql-status", classes="status")
        yield DataTable(id="sql-result", zebra_stripes=True)
        yield Static("examples (Enter or click to run one):", classes="note")
        yield OptionList(*(Option(Text(title), id=str(i)) for i, (title, _) in enumerate(EXAMPLES)), id="sql-examples")
        yield from self.compose_footer()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.query_one(HistoryInput).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit(event.value)

    def submit(self, sql: str) -> None:
        sql = sql.strip()
        if not sql:
            return
        box = self.query_one(HistoryInput)
        box.remember(sql)
        box.value = sql
        self.query_one("#sql-status", Static).update("running...")
        if self.sql_console is None:
            self.sql_console = SQLConsole(self.app.store.catalog)
        self.sql_console.interrupt()  # a query still running is superseded: stop it rather than wait for it
        self.load("query", run_query, self.sql_console, sql)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.submit(EXAMPLES[int(event.option.id)][1])
        self.query_one(HistoryInput).focus()

    def on_loaded(self, message: Loaded) -> None:
        status = self.query_one("#sql-status", Static)
        if message.error:
            status.update(Text(message.error, style="red"))
            return
        result = message.value
        table = self.query_one("#sql-result", DataTable)
        fill(table, result["columns"], [[cell(v) for v in row] for row in result["rows"]])
        total, shown = result["total"], len(result["rows"])
        status.update(f"{total} row{'s' if total != 1 else ''}" + (f" (showing the first {shown})" if total > shown else ""))

    def on_unmount(self) -> None:
        if self.sql_console is not None:
            self.sql_console.interrupt()
            self.sql_console.close()
