"""A person's SQL (`bertsecrets sql`, the browser's SQL screen) cannot leave the catalog: every way out is refused.

Each attack runs through the command line and through the SQL screen's query
function; each must be refused with one line, and no file of the store, of a
scratch folder or of DuckDB's own folder may appear or change. Ordinary
queries keep working and agree with the rows read another way.
"""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bertsecrets.cli import main
from bertsecrets.store import Store
from bertsecrets.store.catalog import SANDBOX_SETTINGS, SQLConsole
from bertsecrets.store.errors import SQLError
from bertsecrets.store.schema import TABLES
from bertsecrets.tui.screens.sql import run_query
from test_tui_stores import browse_store  # noqa: F401 (fixture)

SECRET = "not-for-sql-4711"

WRITE = "the catalog is read-only here"
OUTSIDE = "reads the catalog's tables only"
LOCKED = "settings are locked"


@pytest.fixture
def sandbox(tiny_store, tmp_path):
    """A copy of the tiny store's catalog, a scratch folder holding a secret CSV and Parquet file, and the attacks."""
    source, _ = tiny_store
    root = tmp_path / "store"
    root.mkdir()
    shutil.copy(source.root / "bertsecrets-store.json", root)
    shutil.copytree(source.catalog.tables_dir, root / "tables")
    store = Store.open(root)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "secret.csv").write_text(f"word\n{SECRET}\n")
    pq.write_table(pa.table({"word": [SECRET]}), scratch / "secret.parquet")
    part = store.catalog.part_path("runs", "zz")  # a fake run, if a write got through
    run_part = next((root / "tables" / "runs").glob("run-*.parquet"))

    attacks = {
        "read outside the catalog, or its files directly": [
            "SELECT * FROM read_csv('/etc/passwd')", f"SELECT * FROM read_text('{scratch / 'secret.csv'}')",
            "SELECT * FROM read_blob('/etc/passwd')", "SELECT * FROM glob('/root/*')",
            f"SELECT * FROM parquet_scan('{scratch / 'secret.parquet'}')", f"SELECT * FROM parquet_scan('{run_part}')",
            *(f"SELECT * FROM {fn}('{path}')" for fn in ("read_csv", "read_csv_auto", "read_text", "read_blob", "read_json")
              for path in ("/etc/passwd", scratch / "secret.csv")),
            "SELECT * FROM parquet_scan('/etc/passwd')", f"SELECT * FROM '{scratch / 'secret.parquet'}'",
            f"SELECT * FROM read_parquet('{root / 'tables' / 'runs' / '*.parquet'}')", f"SELECT * FROM glob('{scratch}/*')",
            "SELECT * FROM sniff_csv('/etc/passwd')", f"ATTACH '{root / 'catalog.duckdb'}' (READ_ONLY)",
            "COPY runs FROM '/etc/passwd'",
        ],
        "write anywhere, inside the store too": [
            f"EXPLAIN ANALYZE COPY (SELECT * FROM runs) TO '{part}' (FORMAT parquet)",
            f"COPY (SELECT * FROM runs) TO '{part}' (FORMAT parquet)", f"COPY (SELECT 1) TO '{scratch / 'out.csv'}'",
            "EXPLAIN ANALYZE INSERT INTO runs (run_id) VALUES ('fake')", f"ATTACH '{scratch / 'new.duckdb'}' AS new",
            f"EXPLAIN ANALYZE ATTACH '{scratch / 'new.duckdb'}'", "DELETE FROM runs",
            f"EXPLAIN COPY (SELECT 1) TO '{scratch / 'out.csv'}'", f"COPY runs TO '{root / 'runs.csv'}'",
            f"EXPORT DATABASE '{scratch / 'export'}'", "INSERT INTO runs (run_id, task) VALUES ('fake', 'mrpc')",
            "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "EXPLAIN ANALYZE UPDATE runs SET task = 'x'",
            "EXPLAIN ANALYZE DELETE FROM runs", "UPDATE runs SET task = 'x'", "DROP TABLE runs", "DROP VIEW runs",
            "CREATE TABLE t AS SELECT 1", "CREATE VIEW v AS SELECT 1", "ALTER TABLE runs ADD COLUMN x INT",
            "CREATE MACRO m(x) AS x",
        ],
        "extensions, secrets and the network": [
            "INSTALL httpfs", "LOAD httpfs", "SELECT * FROM 'http://127.0.0.1:9/x.csv'",
            "SELECT * FROM read_parquet('https://example.com/x.parquet')", "FORCE INSTALL httpfs",
            f"LOAD '{scratch / 'x.duckdb_extension'}'", "SELECT * FROM read_csv('s3://bucket/x.csv')",
            "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        ],
        "the sandbox's own settings": [
            "SET enable_external_access = true", "RESET lock_configuration", "PRAGMA enable_external_access = true",
            "SET allowed_directories = ['/']", "SET autoinstall_known_extensions = true",
            *(f"{verb} {name} = {value}" for verb in ("SET", "SET GLOBAL", "SET SESSION", "PRAGMA")
              for name, value in (("enable_external_access", "true"), ("lock_configuration", "false"),
                                  ("allowed_directories", "['/']"), ("allowed_paths", "['/etc/passwd']"),
                                  ("autoinstall_known_extensions", "true"), ("autoload_known_extensions", "true"),
                                  ("python_enable_replacements", "true"), ("temp_directory", f"'{scratch}'"))),
            *(f"RESET {name}" for name in ("enable_external_access", "lock_configuration", "allowed_directories",
                                           "autoinstall_known_extensions", "autoload_known_extensions")),
        ],
        "several statements in one string": [
            f"SELECT 1; COPY (SELECT 1) TO '{scratch / 'multi.csv'}'",
            f"SELECT 1; SET enable_external_access = true; SELECT * FROM read_text('{scratch / 'secret.csv'}')",
            f"BEGIN; COPY (SELECT * FROM runs) TO '{part}' (FORMAT parquet); COMMIT",
            "SELECT count(*) FROM runs; DELETE FROM runs", "CHECKPOINT; DELETE FROM tokens",
        ],
    }
    return store, scratch, attacks


def _expected(statement: str) -> str:
    """What the refusal of ``statement`` must say."""
    s = statement.upper()
    if "ANALYZE ATTACH" in s:
        return "SQL error"  # not even SQL DuckDB accepts
    if any(k in s for k in ("INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE TABLE", "CREATE VIEW", "MACRO")):
        return WRITE
    if any(k in s for k in ("SET ", "PRAGMA", "RESET")):
        return LOCKED
    return OUTSIDE


def _files(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` with the SHA-256 of its bytes."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders if folder.exists() for p in sorted(folder.rglob("*")) if p.is_file()}


def _watched(store, scratch) -> list[Path]:
    # DuckDB's own folder: an INSTALL or a persistent secret would write there.
    return [store.root, scratch, Path.home() / ".duckdb"]


def test_the_attacks_work_outside_the_sandbox(sandbox):
    """The attacks are real: a plain DuckDB connection reads the secret and writes into the store."""
    store, scratch, _ = sandbox
    con = duckdb.connect()
    assert con.execute(f"SELECT content FROM read_text('{scratch / 'secret.csv'}')").fetchall()[0][0].endswith(f"{SECRET}\n")
    target = store.root / "tables" / "runs" / "zz.parquet"
    con.execute(f"EXPLAIN ANALYZE COPY (SELECT 'fake' AS run_id) TO '{target}' (FORMAT parquet)")
    assert target.exists()
    assert {r["run_id"] for r in store.rows("SELECT run_id FROM runs")} >= {"fake"}


#: Attacks of each kind tried through the command line (each call copies the catalog anew); the screen's test tries all.
CLI_PER_KIND = 5


def test_every_way_out_is_refused_on_the_command_line(sandbox, capsys):
    store, scratch, attacks = sandbox
    watched = _watched(store, scratch)
    before = _files(*watched)
    runs = store.rows("SELECT * FROM runs ORDER BY run_id")
    for statement in (a for kind in attacks.values() for a in kind[:CLI_PER_KIND]):
        code = main(["sql", statement, "--store", str(store.root)])
        out, err = capsys.readouterr()
        assert code != 0, statement
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (statement, err)
        assert _expected(statement) in err, (statement, err)
        assert SECRET not in out + err and "root:x:0" not in out + err, statement
    assert _files(*watched) == before
    assert store.rows("SELECT * FROM runs ORDER BY run_id") == runs


def test_every_way_out_is_refused_on_the_sql_screen(sandbox):
    """The screen keeps one console for all its queries: a refused one leaves it unchanged and usable."""
    store, scratch, attacks = sandbox
    watched = _watched(store, scratch)
    before = _files(*watched)
    console = SQLConsole(store.catalog)
    for statement in (a for kind in attacks.values() for a in kind):
        with pytest.raises(SQLError) as refused:
            run_query(console, statement)
        message = str(refused.value)
        assert "\n" not in message and _expected(statement) in message, (statement, message)
        assert SECRET not in message
    assert run_query(console, "SELECT count(*) AS n FROM runs")["rows"] == [[3]]
    console.close()
    assert _files(*watched) == before


def test_the_console_is_configured_as_a_sandbox(sandbox):
    """DuckDB itself reports the sandbox's settings on the console's connection, locked last."""
    store, _, _ = sandbox
    console = SQLConsole(store.catalog)
    names = ", ".join(f"'{n}'" for n in SANDBOX_SETTINGS)
    got = {r["name"]: r["value"] for r in console.query(f"SELECT name, value FROM duckdb_settings() WHERE name IN ({names})").to_pylist()}
    assert got == {"enable_external_access": "false", "autoinstall_known_extensions": "false",
                   "autoload_known_extensions": "false", "allow_community_extensions": "false",
                   "python_enable_replacements": "false", "temp_directory": "", "lock_configuration": "true"}
    assert console.query("SELECT value FROM duckdb_settings() WHERE name = 'allowed_directories'").to_pylist() == [{"value": "[]"}]
    # The copy is deleted once open: no file of the console remains for a query to reach.
    path = console.query("SELECT path FROM duckdb_databases() WHERE database_name = 'catalog'").to_pylist()[0]["path"]
    assert not Path(path).exists() and not Path(path).parent.exists()
    console.close()


def test_ordinary_queries_work_and_agree_with_the_rows_read_another_way(sandbox, capsys):
    store, _, _ = sandbox
    s = ["--store", str(store.root), "--format", "json"]
    tables = {name: pa.concat_tables([pq.read_table(p) for p in sorted((store.catalog.tables_dir / name).glob("*.parquet"))],
                                     promote_options="default") for name in ("runs", "examples", "tokens")}

    assert main(["sql", "SELECT run_id, setup, accuracy FROM runs ORDER BY run_id", *s]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = sorted(({k: r[k] for k in ("run_id", "setup", "accuracy")} for r in tables["runs"].to_pylist()),
                      key=lambda r: r["run_id"])
    assert got == expected and len(got) == 3

    query = ("SELECT e.run_id, e.example, count(*) AS n FROM examples e JOIN tokens t USING (run_id, example) "
             "GROUP BY ALL ORDER BY ALL")
    assert main(["sql", query, *s]) == 0
    joined = {(r["run_id"], r["example"]): r["n"] for r in json.loads(capsys.readouterr().out)}
    examples = {(r["run_id"], r["example"]) for r in tables["examples"].to_pylist()}
    counted = collections.Counter((r["run_id"], r["example"]) for r in tables["tokens"].to_pylist())
    assert joined == {k: n for k, n in counted.items() if k in examples} and joined

    console = SQLConsole(store.catalog)
    assert {r["name"] for r in console.query("SHOW TABLES").to_pylist()} == set(TABLES)
    assert [r["column_name"] for r in console.query("DESCRIBE runs").to_pylist()] == TABLES["runs"].names
    assert console.query("SELECT list_sort(['b', 'a']) AS l, regexp_replace('abc', 'b', 'x') AS r, "
                         "count(*) FILTER (WHERE true) AS one FROM range(1)").to_pylist() == [{"l": ["a", "b"], "r": "axc", "one": 1}]
    assert console.query("SELECT count(*) AS n FROM duckdb_tables()").to_pylist() == [{"n": len(TABLES)}]
    assert console.query("SUMMARIZE tokens").num_rows == len(TABLES["tokens"])
    console.close()


def test_the_console_is_a_connection_of_its_own_and_sees_new_rows(sandbox):
    """What a person creates stays in their console; the app's queries and other consoles never see it."""
    store, _, _ = sandbox
    console = SQLConsole(store.catalog)
    console.query("CREATE TEMP VIEW runs AS SELECT 'fake' AS run_id")  # in memory, this console only
    assert console.query("SELECT run_id FROM runs").to_pylist() == [{"run_id": "fake"}]
    assert "fake" not in {r["run_id"] for r in store.rows("SELECT run_id FROM runs")}
    other = SQLConsole(store.catalog)
    assert other.query("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 3}]
    # An ingest (here: a run written through the store) is seen by the next query, without reopening.
    store.save_run({"run_id": "run-new", "task": "rte", "status": "running"})
    assert other.query("SELECT task FROM runs WHERE run_id = 'run-new'").to_pylist() == [{"task": "rte"}]
    console.close()
    other.close()


def test_a_transaction_left_open_does_not_stick(sandbox):
    store, _, _ = sandbox
    console = SQLConsole(store.catalog)
    with pytest.raises(SQLError, match=OUTSIDE):
        console.query("BEGIN; SELECT * FROM read_text('/etc/passwd')")
    console.query("BEGIN")
    assert console.query("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 3}]
    console.close()


async def test_the_sql_screen_refuses_on_one_line_and_shows_data_as_written(browse_store, monkeypatch):
    """On the browser's SQL screen: a refusal is one line in the status; names and values that look like markup show as typed."""
    from textual.widgets import DataTable, Static

    from bertsecrets.tui.app import BrowseApp
    from bertsecrets.tui.screens import sql
    from test_tui_app import settle

    monkeypatch.setattr(sql, "SLOW_SECONDS", float("inf"))  # no query time in the status line, however loaded

    store, _ = browse_store
    before = _files(store.root)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, "s")
        box = app.screen.query_one("#sql-input")
        status = app.screen.query_one("#sql-status", Static)
        for statement, expected in [(f"EXPLAIN ANALYZE COPY (SELECT * FROM runs) TO '{store.root}/tables/runs/zz.parquet'", OUTSIDE),
                                    ("SELECT * FROM read_text('/etc/passwd')", OUTSIDE),
                                    ("SET enable_external_access = true", LOCKED),
                                    ("SELEC '[/x]' :smile:", "SELEC '[/x]' :smile:")]:
            box.value = statement
            await settle(pilot, "enter")
            shown = str(status.render())
            assert expected in shown and "\n" not in shown, (statement, shown)
            assert "root:x:0" not in shown
        box.value = "SELECT '[/bold]' AS \"[/x]\", ':smile:' AS \":x:\", 'root:x:0' AS c"
        await settle(pilot, "enter")
        table = app.screen.query_one("#sql-result", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["[/x]", ":x:", "c"]
        assert [str(v) for v in table.get_row_at(0)] == ["[/bold]", ":smile:", "root:x:0"]
        assert str(status.render()) == "1 row"
    assert _files(store.root) == before
