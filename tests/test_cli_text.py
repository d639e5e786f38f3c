"""The command line prints what people type and what the store holds literally, and names failures of the machine.

Text that looks like Rich markup or an emoji code ("[/x]", "[bold]", ":smile:",
"root:x:0") is printed as written, in errors and in results; a full disk, a
read-only folder or a missing folder gets a one-line message of its own.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import bertsecrets.commands.runs as runs_command
from bertsecrets.cli import main
from bertsecrets.store import Store
from bertsecrets.store import export

TRICKY = ["[/x]", "[bold]", ":smile:", "root:x:0"]
MANGLED = ["😄", "❌"]  # what Rich makes of ":smile:" and ":x:" when it reads emoji codes


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(code: int, err: str) -> None:
    assert code != 0
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "internal error" not in err


@pytest.fixture
def tricky_store(tiny_store, tmp_path) -> Store:
    """The tiny store's catalog in a folder whose name holds emoji codes and a markup-like tag.

    No "[" in it: the catalog's views read their parts through a glob, where "[...]" is a
    character class (paths with brackets are tried where no store is read: --store, -o, --data-dir).
    """
    source, _ = tiny_store
    root = tmp_path / "st:bold:ore :smile: root:x:0 @click=quit"
    root.mkdir()
    shutil.copy(source.root / "bertsecrets-store.json", root)
    shutil.copytree(source.catalog.tables_dir, root / "tables")
    return Store.open(root)


def test_sql_text_in_errors_prints_as_written(tricky_store, capsys):
    s = ["--store", str(tricky_store.root)]
    for sql, expected in [("SELEC '[/x]'", "SELEC '[/x]'"), ('SELECT * FROM "[bold]:smile:"', "[bold]:smile:"),
                          ("SELECT CAST('root:x:0' AS INTEGER)", "root:x:0"), ("SELECT CAST('[/bold] :smile:' AS DATE)", "[/bold] :smile:")]:
        code, out, err = _run(capsys, "sql", sql, *s)
        _one_error_line(code, err)
        assert expected in err and out == "", (sql, err)
        assert not any(m in err for m in MANGLED)


def test_query_results_print_as_written(tricky_store, capsys):
    sql = "SELECT '[/bold]' AS a, ':smile:' AS b, 'root:x:0' AS \"[/x]\", '[bold]y' AS \":x:\""
    code, out, err = _run(capsys, "sql", sql, "--store", str(tricky_store.root))
    assert code == 0 and err == ""
    for text in ("[/bold]", ":smile:", "root:x:0", "[bold]y", "[/x]", ":x:"):
        assert text in out, (text, out)
    assert not any(m in out for m in MANGLED) and "1 row" in out


def test_stored_values_print_as_written_in_runs_and_sql(tricky_store, capsys, monkeypatch):
    """A value in the catalog (here a run's task, set-up and model) is data, whatever it looks like."""
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no cell is cut short
    store = tricky_store
    store.save_run({"run_id": "run-tricky", "task": "[bold]", "setup": ":smile:", "model_used": "root:x:0",
                    "status": "done"})
    code, out, err = _run(capsys, "runs", "--store", str(store.root))
    assert code == 0 and err == ""
    flat = " ".join(out.split())
    for text in ("[bold]", ":smile:", "root:x:0"):
        assert text in flat, (text, out)
    assert not any(m in out for m in MANGLED) and "4 rows" in out
    code, out, _ = _run(capsys, "sql", "SELECT task, setup, model_used FROM runs WHERE run_id = 'run-tricky'",
                        "--store", str(store.root), "--format", "json")
    assert json.loads(out) == [{"task": "[bold]", "setup": ":smile:", "model_used": "root:x:0"}]


def test_paths_print_as_written(tricky_store, tiny_bert, tmp_path, capsys):
    root = str(tricky_store.root)
    code, out, err = _run(capsys, "check", "--store", root)
    assert root in " ".join(out.split()) and not any(m in out for m in MANGLED)

    missing = str(tmp_path / "no[/x]where :smile:")
    code, _, err = _run(capsys, "sql", "SELECT 1", "--store", missing)
    _one_error_line(code, err)
    assert f"no store at {missing}" in err

    glue = str(tmp_path / "glue[/x] root:x:0")
    code, _, err = _run(capsys, "ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", glue, "--store", str(tmp_path / "new"))
    _one_error_line(code, err)
    assert f"no MRPC data in {glue}" in err

    output = str(tmp_path / "labels [bold] :smile:.csv")
    code, _, err = _run(capsys, "labels", "export", "--store", root, "-o", output)
    assert code == 0 and f"to {output}" in err and Path(output).exists()


def test_an_unexpected_error_is_one_literal_line(tricky_store, capsys, monkeypatch):
    def boom(*_):
        raise RuntimeError("[/x] broke :smile:")

    monkeypatch.setattr(runs_command, "run", boom)
    code, _, err = _run(capsys, "runs", "--store", str(tricky_store.root))
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("internal error: RuntimeError: [/x] broke :smile:")


# -- failures of the machine ---------------------------------------------------------


def test_output_into_a_missing_folder_names_the_folder(tricky_store, tmp_path, capsys):
    target = tmp_path / "missing" / "dir" / "x.csv"
    code, out, err = _run(capsys, "sql", "SELECT 1", "--store", str(tricky_store.root), "--format", "csv", "-o", str(target))
    _one_error_line(code, err)
    assert f"the folder {target.parent} does not exist" in err and out == ""
    assert not (tmp_path / "missing").exists()
    # The command's own handler names a path that vanished (ENOENT), here for labels export.
    code, _, err = _run(capsys, "labels", "export", "--store", str(tricky_store.root), "-o", str(target))
    _one_error_line(code, err)
    assert f"no such file or folder: {target}" in err


@pytest.mark.parametrize("code, expected", [
    (errno.ENOSPC, "the disk is full"),
    (errno.EACCES, "permission denied"),
    (errno.EROFS, "is on a read-only file system"),
])
def test_a_failing_disk_gets_its_own_line_and_leaves_no_half_file(tricky_store, tmp_path, capsys, monkeypatch, code, expected):
    target = tmp_path / "out.parquet"

    def failing_writer(table, sink, **kwargs):
        sink.write(b"PAR1 half")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(export.pq, "write_table", failing_writer)
    status, out, err = _run(capsys, "sql", "SELECT * FROM runs", "--store", str(tricky_store.root),
                            "--format", "parquet", "-o", str(target))
    _one_error_line(status, err)
    assert expected in err and str(target) in err, err
    assert not target.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_a_really_full_device(tricky_store, capsys):
    """/dev/full answers every write with ENOSPC; the device itself must survive the clean-up."""
    status, _, err = _run(capsys, "sql", "SELECT * FROM runs", "--store", str(tricky_store.root),
                          "--format", "csv", "-o", "/dev/full")
    _one_error_line(status, err)
    assert "the disk is full" in err and "/dev/full" in err
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")


def test_no_room_for_the_consoles_copy_is_one_line(tricky_store, tmp_path, capsys, monkeypatch):
    """The SQL console copies the catalog into a temporary folder: a full or broken one is named on one line."""
    from bertsecrets.store import catalog

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(catalog.tempfile, "mkdtemp", lambda **_: str(blocker / "sql"))  # a folder inside a file
    status, _, err = _run(capsys, "sql", "SELECT 1", "--store", str(tricky_store.root))
    _one_error_line(status, err)
    assert f"cannot write the SQL console's copy of the catalog in {blocker / 'sql'}" in err and "TMPDIR" in err

    def full(**_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "tmp" / "bertsecrets-sql-x"))

    monkeypatch.setattr(catalog.tempfile, "mkdtemp", full)
    status, _, err = _run(capsys, "sql", "SELECT 1", "--store", str(tricky_store.root))
    _one_error_line(status, err)
    assert "the disk is full" in err and "bertsecrets-sql-x" in err
