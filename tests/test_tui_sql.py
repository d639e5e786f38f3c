"""The SQL screen: the schema tree's words against docs/catalog.md, name completion, cancelling, errors, exports."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from textual.widgets import DataTable, Input, Static

from bertsecrets.store import queries
from bertsecrets.store.catalog import SQLConsole
from bertsecrets.store.errors import SQLError, StoreError
from bertsecrets.store.schema import TABLES
from bertsecrets.tui import catalog_notes
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.screens import sql as sql_screen
from bertsecrets.tui.screens.sql_export import ExportDialog
from bertsecrets.tui.widgets.schema_tree import Entry, SchemaTree, describe
from bertsecrets.tui.widgets.sql_complete import Schema, SQLComplete, complete, suggestions, typed_at
from conftest import settle, text_of
from test_tui_layout import screen_lines
from test_tui_stores import handmade_store

DOC = Path(__file__).resolve().parent.parent / "docs" / "catalog.md"


# -- the schema tree's words are docs/catalog.md's ------------------------------------------


def plain(text: str) -> str:
    """Markdown inline marks out, as the notes hold them: `code` and [text](link) read as text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return " ".join(text.replace("`", "").split())


def read_doc(doc: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Per table section of the doc: its prose before any column table (code left out), and its column table's rows."""
    tables, columns = {}, {}
    for section in re.split(r"^## ", doc, flags=re.M)[1:]:
        name, _, body = section.partition("\n")
        if name.strip() not in TABLES:
            continue
        prose, rows, fenced = [], {}, False
        for line in body.splitlines():
            if line.startswith("```"):
                fenced = not fenced
            if fenced or line.startswith(("```", "    ", "\t")):
                continue  # example queries: the tree shows words, not code
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if cells[0] == "column" or set(cells[0]) <= {"-"}:
                    continue
                for column in cells[0].split(","):  # "n_layers, n_heads | the model's shape"
                    rows[column.strip()] = plain(cells[1])
            elif not rows:
                prose.append(line)
        tables[name.strip()] = plain(" ".join(prose))
        if rows:
            columns[name.strip()] = rows
    return tables, columns


def test_the_notes_are_the_words_of_docs_catalog_md():
    tables, columns = read_doc(DOC.read_text(encoding="utf-8"))
    assert catalog_notes.TABLES == tables, "bertsecrets_tui/catalog_notes.py differs from docs/catalog.md: copy it again"
    assert catalog_notes.COLUMNS == columns, "bertsecrets_tui/catalog_notes.py differs from docs/catalog.md: copy it again"


def test_every_table_is_described_and_every_described_column_exists():
    assert sorted(catalog_notes.TABLES) == sorted(TABLES)
    assert all(catalog_notes.TABLES.values())
    for table, notes in catalog_notes.COLUMNS.items():
        assert sorted(notes) == sorted(TABLES[table].names), table  # a column table names every column


def test_describe_a_table_a_documented_column_and_a_column_of_a_prose_table():
    assert describe(Entry("runs")).startswith("runs: One row per run.")
    assert describe(Entry("runs", "n_heads", "BIGINT")) == "runs.n_heads BIGINT: the model's shape"
    assert describe(Entry("head_stats", "entropy", "DOUBLE")).startswith(
        "head_stats.entropy DOUBLE (the table: Per-head summary statistics")


def test_catalog_columns_are_the_schemas_columns_with_duckdb_types(tmp_path):
    store = handmade_store(tmp_path / "s", n_examples=1)
    rows = queries.catalog_columns(store)
    assert [(r["table"], r["column"]) for r in rows] == [(t, c) for t in TABLES for c in TABLES[t].names]
    # The types DuckDB gives the schema's Arrow types, read from an empty table of each.
    want = {(t, c): str(kind) for t in TABLES
            for c, kind in zip(TABLES[t].names, duckdb.from_arrow(TABLES[t].empty_table()).types)}
    assert {(r["table"], r["column"]): r["type"] for r in rows} == want


# -- completion ---------------------------------------------------------------------------------


SCHEMA = Schema({
    "runs": [("run_id", "VARCHAR"), ("setup", "VARCHAR"), ("seed", "BIGINT")],
    "tokens": [("run_id", "VARCHAR"), ("segment", "TINYINT"), ("token", "VARCHAR")],
    "ablation_seeds": [("seeds", "VARCHAR")],
})


def test_the_name_typed_at_the_cursor():
    assert typed_at("SELECT se", 9) == (7, "se", None)
    assert typed_at("SELECT r.se FROM runs r", 11) == (9, "se", "r")
    assert typed_at("SELECT tokens.", 14) == (14, "", "tokens")
    assert typed_at("SELECT (", 8) == (8, "", None)
    assert typed_at("SELECT seed FROM runs", 9) == (7, "se", None)  # only what is before the cursor


def test_suggestions_tables_first_then_the_named_tables_columns_once_each():
    # Nothing named: tables, then every column in the catalog's order.
    assert [n for n, _ in suggestions(SCHEMA, "SELECT S", 8)] == ["setup", "seed", "segment", "seeds"]
    # A table the query names comes first; a name is listed once.
    assert [n for n, _ in suggestions(SCHEMA, "SELECT * FROM tokens WHERE se", 29)] == \
        ["segment", "setup", "seed", "seeds"]
    assert [n for n, _ in suggestions(SCHEMA, "SELECT * FROM t", 15)] == ["tokens", "token"]
    assert dict(suggestions(SCHEMA, "SELECT run", 10)) == {"runs": "table", "run_id": "VARCHAR · runs +1"}
    # After a table and a dot: its columns only; after an alias: the named tables' columns.
    assert [n for n, _ in suggestions(SCHEMA, "SELECT tokens.", 14)] == ["run_id", "segment", "token"]
    assert [n for n, _ in suggestions(SCHEMA, "SELECT r.s FROM runs r", 10)] == ["setup", "seed"]
    assert suggestions(SCHEMA, "SELECT ", 7) == [] and suggestions(SCHEMA, "SELECT xyz", 10) == []


def test_complete_replaces_the_typed_name_and_keeps_the_rest():
    assert complete("SELECT se FROM runs", 9, "setup") == ("SELECT setup FROM runs", 12)
    assert complete("SELECT r.se", 11, "seed") == ("SELECT r.seed", 13)
    assert complete("SELECT tokens.", 14, "token") == ("SELECT tokens.token", 19)


# -- exports through the console -----------------------------------------------------------


def test_the_console_exports_a_result_to_csv_and_parquet_as_queried(tmp_path):
    store = handmade_store(tmp_path / "s", n_examples=2)
    console = SQLConsole(store.catalog)
    try:
        result = console.query("SELECT example, position, token, segment, word FROM tokens ORDER BY example, position")
        written = console.export(result, tmp_path / "t.parquet", "parquet")
        assert written == tmp_path / "t.parquet" and pq.read_table(written).equals(result)
        with open(console.export(result, tmp_path / "t.csv", "csv"), newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == result.column_names and len(rows) == result.num_rows + 1
        want = [["" if v is None else str(v) for v in row.values()] for row in result.to_pylist()]
        assert rows[1:] == want  # NULL as an empty field; "[CLS]" and commas as written
        assert not list(tmp_path.glob(".*.part"))

        with pytest.raises(StoreError, match="the folder .* does not exist"):
            console.export(result, tmp_path / "no" / "t.csv", "csv")
        with pytest.raises(StoreError, match="it is a folder"):
            console.export(result, tmp_path, "csv")
        with pytest.raises(SQLError, match="choose one of csv, parquet"):
            console.export(result, tmp_path / "t.json", "json")
        # The person's SQL still cannot write anywhere, the exports folder included.
        with pytest.raises(SQLError, match="refused"):
            console.query(f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'")
    finally:
        console.close()


# -- the screen ------------------------------------------------------------------------------


async def type_in(pilot, text: str) -> None:
    await pilot.press(*("space" if ch == " " else ch for ch in text))
    await pilot.pause()


async def run_query(pilot, sql: str) -> Input:
    """Open the SQL console and run ``sql`` there, waiting for its result; the console's input box."""
    await settle(pilot, "s")
    box = pilot.app.screen.query_one("#sql-input", Input)
    box.value = sql
    await settle(pilot, "enter")
    return box


@pytest.fixture
def store(tmp_path, monkeypatch):
    # The status line adds a query's time once it passes SLOW_SECONDS, which a loaded machine can reach.
    monkeypatch.setattr(sql_screen, "SLOW_SECONDS", float("inf"))
    return handmade_store(tmp_path / "s", n_examples=2)


async def test_a_slow_query_has_its_time_printed(store, monkeypatch):
    monkeypatch.setattr(sql_screen, "SLOW_SECONDS", 0.0)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_query(pilot, "SELECT * FROM runs")
        assert re.fullmatch(r"3 rows in \d+\.\d s", text_of(app, "#sql-status"))


async def test_tab_completes_a_name_enter_runs_what_is_typed(store):
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "s")
        box, dropdown = app.screen.query_one("#sql-input", Input), app.screen.query_one(SQLComplete)
        await type_in(pilot, "SELECT task, se")
        assert dropdown.display and dropdown.option_list.get_option_at_index(0).value.split()[0] == "setup"
        await settle(pilot, "escape")  # closes the list, not the screen
        assert not dropdown.display and app.current_mode == "sql" and box.value == "SELECT task, se"
        await pilot.press("down")  # ↓ with the list closed is the history (empty): the list stays closed
        assert not dropdown.display
        await type_in(pilot, "t")
        assert dropdown.display and dropdown.option_list.get_option_at_index(0).value.split()[0] == "setup"
        await pilot.press("tab")
        assert box.value == "SELECT task, setup" and not dropdown.display
        await type_in(pilot, " FROM runs WHERE seed")  # "seed" and "seeds" are offered; Enter runs as typed
        assert dropdown.display
        await settle(pilot, "enter")
        # Run as typed: every run has seed 0, false as a condition.
        assert box.value == "SELECT task, setup FROM runs WHERE seed" and text_of(app, "#sql-status") == "0 rows"
        box.value = "SELECT task, setup FROM runs ORDER BY setup"
        await settle(pilot, "enter")
        table = app.screen.query_one("#sql-result", DataTable)
        assert table.row_count == 3 and text_of(app, "#sql-status") == "3 rows"
        # ↓ with no dropdown open walks the history, as before.
        await settle(pilot, "up", "up")
        assert box.value == "SELECT task, setup FROM runs WHERE seed"


async def test_an_error_clears_the_result_and_leaves_nothing_to_export(store):
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        box = await run_query(pilot, "SELECT * FROM runs")
        table = app.screen.query_one("#sql-result", DataTable)
        assert table.row_count == 3
        box.value = "SELECT nope FROM runs"
        await settle(pilot, "enter")
        assert table.row_count == 0 and not table.columns
        assert text_of(app, "#sql-status").startswith("SQL error: Binder Error")
        await settle(pilot, "ctrl+s")
        assert text_of(app, "#sql-status") == "nothing to export: run a query first"
        assert not isinstance(app.screen, ExportDialog)


async def test_a_running_query_is_cancelled_with_ctrl_g(store):
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        box = await run_query(pilot, "SELECT * FROM runs")
        box.value = "SELECT count(*) FROM range(1000000000000) t(a) WHERE a % 7 = 3"  # hours of work
        await pilot.press("enter")
        for _ in range(200):  # the console copies the catalog first; then the query runs
            await pilot.pause(0.05)
            if app.screen.sql_console is not None and app.screen.sql_console._con is not None:
                break
        await pilot.pause(0.3)
        assert text_of(app, "#sql-status").startswith("running... ") and "ctrl+g cancels" in text_of(app, "#sql-status")
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert text_of(app, "#sql-status") == "the query was interrupted"
        assert app.screen.query_one("#sql-result", DataTable).row_count == 0
        # The console answers the next query at once.
        box.value = "SELECT 42 AS answer"
        await settle(pilot, "enter")
        assert text_of(app, "#sql-status") == "1 row"
        await settle(pilot, "ctrl+g")
        assert text_of(app, "#sql-status") == "no query is running"


async def test_ctrl_s_writes_the_whole_result_and_names_the_file(store, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTSECRETS_EXPORTS", str(tmp_path / "exports"))
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        # More rows than the table shows.
        box = await run_query(pilot, "SELECT range AS n, range % 3 AS m FROM range(1200)")
        assert text_of(app, "#sql-status") == "1200 rows (showing the first 500)"

        await settle(pilot, "ctrl+s")
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        path = dialog.query_one(Input)
        assert re.fullmatch(re.escape(str(tmp_path / "exports")) + r"/sql-\d{8}-\d{6}\.csv", path.value)
        path.value = str(tmp_path / "exports" / "n.txt")
        await settle(pilot, "enter")
        assert app.screen is dialog and "must end in .csv or .parquet" in text_of(app, "#sql-export-note")
        path.value = str(tmp_path / "exports" / "n.csv")
        await settle(pilot, "enter")
        assert not isinstance(app.screen, ExportDialog)
        assert text_of(app, "#sql-status") == f"wrote 1200 rows to {tmp_path / 'exports' / 'n.csv'}"
        with open(tmp_path / "exports" / "n.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["n", "m"] and rows[1:] == [[str(i), str(i % 3)] for i in range(1200)]

        await settle(pilot, "ctrl+s")
        app.screen.query_one(Input).value = str(tmp_path / "exports" / "n.parquet")
        await settle(pilot, "enter")
        table = pq.read_table(tmp_path / "exports" / "n.parquet")
        assert table.column("n").to_pylist() == list(range(1200)) and table.schema.field("m").type == pa.int64()

        await settle(pilot, "ctrl+s", "escape")  # Esc leaves the dialog, not the SQL screen
        assert app.current_mode == "sql" and not isinstance(app.screen, ExportDialog)
        await settle(pilot, "ctrl+s")
        app.screen.query_one(Input).value = str(tmp_path / "missing" / "n.csv")
        await settle(pilot, "enter")
        assert text_of(app, "#sql-status").startswith(f"not exported: cannot write {tmp_path / 'missing' / 'n.csv'}")


async def test_the_tree_lists_tables_and_columns_with_their_words(store):
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot, "s")
        assert not app.screen.query_one("#sql-schema").display  # narrow: the result gets the width
        await settle(pilot, "ctrl+b")
        tree = app.screen.query_one(SchemaTree)
        assert tree.has_focus and [n.data.table for n in tree.root.children] == list(TABLES)
        await settle(pilot, "enter")  # opens the first table: runs
        assert text_of(app, "#sql-about").startswith("runs: One row per run.")
        await settle(pilot, "down", "down")
        assert text_of(app, "#sql-about") == "runs.experiment_id VARCHAR: the same for the three set-ups of one ingest"
        box = app.screen.query_one("#sql-input", Input)
        box.value = "SELECT task,"
        box.cursor_position = len(box.value)
        await settle(pilot, "enter")  # the column's name goes into the query, at the cursor
        assert box.value == "SELECT task, experiment_id" and box.has_focus
        lines = screen_lines(app)
        assert all(len(line.rstrip()) <= 60 for line in lines)
        await settle(pilot, "ctrl+b")
        assert not app.screen.query_one("#sql-schema").display and box.has_focus


async def test_in_a_web_browser_the_export_is_a_name_in_the_exports_folder_sent_to_the_browser(store, tmp_path,
                                                                                               monkeypatch):
    monkeypatch.setenv("BERTSECRETS_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setattr(BrowseApp, "is_web", property(lambda self: True))
    sent: list[Path] = []
    monkeypatch.setattr(BrowseApp, "deliver_binary", lambda self, path, **kw: sent.append(Path(path)))
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "s")
        app.screen.query_one("#sql-input", Input).value = "SELECT run_id FROM runs"
        await settle(pilot, "enter", "ctrl+s")
        path = app.screen.query_one(Input)
        assert re.fullmatch(r"sql-\d{8}-\d{6}\.csv", path.value)  # a name: no folder of the server is shown
        for elsewhere in ("/tmp/x.csv", "../x.csv", "sub/x.csv", ".bashrc.csv"):
            path.value = elsewhere
            await settle(pilot, "enter")
            assert isinstance(app.screen, ExportDialog) and "a file name only" in text_of(app, "#sql-export-note")
        path.value = "runs.csv"
        await settle(pilot, "enter")
        written = tmp_path / "exports" / "runs.csv"
        assert text_of(app, "#sql-status") == f"wrote 3 rows to {written}; sent to this browser"
        assert sent == [written] and written.read_text().splitlines()[0] == "run_id"
