"""The catalog: Parquet parts per table, read through DuckDB views; and the sandboxed SQL console.

DuckDB lets one process write a database file or many read it, never both.
So the catalog's rows live in immutable Parquet parts that a writer replaces
atomically (write to a temporary file, then rename), and every reader opens
its own in-memory DuckDB with views over the parts. An ingest never locks a
reader out, and a reader never blocks an ingest.

A person's SQL never runs on those connections (they read the store's files
directly): it runs in :class:`SQLConsole`, DuckDB's sandbox over a copy of the tables.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bertsecrets.store.errors import SQLError, StoreCorrupt, StoreError, writing
from bertsecrets.store.schema import TABLES

_EMPTY_PART = "_schema"


def _quote(text: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


_GLOB_CHARS = re.compile(r"([*?\[\]])")
_ESCAPED_GLOB_CHARS = re.compile(r"\[([*?\[\]])\]")


def glob_literal(path: str | Path) -> str:
    """``path`` as a DuckDB glob pattern that matches only itself: each of ``* ? [ ]`` in brackets of its own.

    DuckDB expands globs in every part of a path, and even a path without ``*`` is
    a pattern once it holds ``[`` or ``?``, so a store in ``/data/runs[2024]`` would
    read the parts of ``/data/runs2`` (or none). ``[[]`` matches ``[`` alone and
    ``[]]`` matches ``]`` alone in DuckDB's glob, as in the shell's.
    """
    return _GLOB_CHARS.sub(r"[\1]", str(path))


def glob_path(pattern: str) -> str:
    """The path :func:`glob_literal` made ``pattern`` from."""
    return _ESCAPED_GLOB_CHARS.sub(r"\1", pattern)


def umask() -> int:
    """The process's umask, read without changing it (other threads may be creating files)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic swap, briefly
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file: what every file of the store gets."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    return 0o777 & ~umask()


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that readers see the old file or the new one, never half."""
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not *.parquet: the views' globs must never see a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        # mkstemp makes the file private (0600); a part must be readable like any other file
        # of the store, e.g. by the account that serves the web view.
        os.fchmod(fd, file_mode())
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def part_problem(table: str, path: Path) -> tuple[str, str] | None:
    """Why a catalog part cannot serve its table, from its footer: (kind, reason), or None when it can.

    Kinds: ``permission`` (this account may not read it: nothing is damaged),
    ``unreadable`` (not Parquet), ``schema`` (it lacks the table's first column
    or holds a known column with another type). Trailing columns a part lacks are
    fine (written before they were added), and so are columns this version does
    not know (written by a newer one).
    """
    try:
        schema = pq.read_schema(path)
    except PermissionError:
        return "permission", "permission denied"
    except FileNotFoundError:
        return None  # replaced or removed since it was listed
    except (pa.ArrowException, OSError, ValueError) as exc:
        return "unreadable", arrow_reason(exc, path)
    return schema_problem(table, schema)


def arrow_reason(exc: BaseException, path: Path) -> str:
    """Arrow's reason a Parquet file does not read, without the path it repeats."""
    text = _one_line(exc).replace(f"Could not open Parquet input source '{path}': ", "")
    return text.replace(str(path), "the file") or type(exc).__name__


def schema_problem(table: str, schema: pa.Schema) -> tuple[str, str] | None:
    """("schema", why) when a part's schema cannot serve ``table`` (see :func:`part_problem`), else None."""
    expected = TABLES[table]
    first = expected.field(0).name
    if first not in schema.names:
        return "schema", f"lacks the column {first}"
    wrong = [
        f"{f.name} is {schema.field(f.name).type}, not {f.type}"
        for f in expected
        if f.name in schema.names and not schema.field(f.name).type.equals(f.type)
    ]
    if wrong:
        return "schema", "; ".join(wrong)
    return None


def to_arrow(table_name: str, rows: pa.Table | Iterable[dict[str, Any]]) -> pa.Table:
    """Rows as an Arrow table with the table's schema (missing columns become NULL)."""
    schema = TABLES[table_name]
    if isinstance(rows, pa.Table):
        columns = {}
        for field in schema:
            if field.name in rows.column_names:
                columns[field.name] = rows[field.name].cast(field.type)
            else:
                columns[field.name] = pa.nulls(rows.num_rows, field.type)
        return pa.table(columns, schema=schema)
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)


class Catalog:
    """Reads and writes the catalog of one store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tables_dir = root / "tables"
        self._local = threading.local()

    # -- writing ---------------------------------------------------------

    def ensure_tables(self) -> None:
        """Give every table a schema part, so its view exists before any rows do."""
        for name, schema in TABLES.items():
            path = self.part_path(name, _EMPTY_PART)
            if not path.exists():
                write_parquet_atomic(schema.empty_table(), path)

    def part_path(self, table: str, part: str) -> Path:
        if table not in TABLES:
            raise KeyError(table)
        return self.tables_dir / table / f"{part}.parquet"

    def write(self, table: str, part: str, rows: pa.Table | Iterable[dict[str, Any]]) -> None:
        """Replace part ``part`` of ``table`` with ``rows`` (atomically)."""
        write_parquet_atomic(to_arrow(table, rows), self.part_path(table, part))

    def delete(self, table: str, part: str) -> None:
        path = self.part_path(table, part)
        with writing(path.parent):
            path.unlink(missing_ok=True)

    def has_part(self, table: str, part: str) -> bool:
        return self.part_path(table, part).exists()

    def part_rows(self, table: str, part: str) -> list[dict[str, Any]]:
        """One part's rows as dicts (none when it does not exist)."""
        data = self.read_part(table, part)
        return [] if data is None else pylist(data)

    def read_part(self, table: str, part: str) -> pa.Table | None:
        """One part as Arrow, or None when it does not exist."""
        path = self.part_path(table, part)
        try:
            # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset and with it pandas (0.8 s).
            with pq.ParquetFile(path) as part_file:
                return part_file.read()
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise StoreError(
                f"catalog file {path} is not readable by this account: run as the store's owner, "
                "or let this account read the store (chmod -R a+rX)"
            ) from exc
        except (pa.ArrowInvalid, OSError) as exc:
            raise StoreCorrupt(
                f"catalog file {path} is unreadable ({_one_line(exc)}); run `bertsecrets check --repair`"
            ) from exc

    def fingerprint(self, tables: Iterable[str] | None = None) -> dict[str, tuple]:
        """Per table, a token that changes whenever a part is written, replaced or removed.

        Only file names, inodes, sizes and modification times: cheap enough for a reader
        to poll every second while an ingest writes, without running a query.
        """
        out = {}
        for name in tables if tables is not None else TABLES:
            try:
                with os.scandir(self.tables_dir / name) as entries:
                    out[name] = tuple(sorted(
                        (e.name, e.inode(), e.stat().st_size, e.stat().st_mtime_ns)
                        for e in entries if e.name.endswith(".parquet") and not e.name.startswith(".")
                    ))
            except FileNotFoundError:
                out[name] = ()
        return out

    def parts(self, table: str) -> list[str]:
        folder = self.tables_dir / table
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.parquet") if p.stem != _EMPTY_PART)

    # -- reading ---------------------------------------------------------

    def _view(self, name: str) -> tuple[str, bool]:
        """CREATE VIEW for one table, and whether it is the empty stand-in (no parts on disk yet)."""
        folder = self.tables_dir / name
        if any(folder.glob("*.parquet")):
            source = f"read_parquet({_quote(glob_literal(folder) + '/*.parquet')}, union_by_name = true)"
            empty = False
        else:
            # A store from before this table existed: an empty, typed view until a part appears.
            source = f"(SELECT {_typed_columns(name, 'NULL')} LIMIT 0)"
            empty = True
        return f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}", empty

    def view_sql(self) -> list[str]:
        """CREATE VIEW statements for every table, with absolute paths to the parts."""
        return [self._view(name)[0] for name in TABLES]

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with the catalog's views.

        The views' globs are expanded at every query, so rows written later are
        seen without reconnecting. Connections are not thread-safe: one per thread.
        """
        return self._connect(_Views())

    def _connect(self, views: "_Views") -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        self.create_views(con, views)
        return con

    def create_views(self, con: duckdb.DuckDBPyConnection, views: "_Views | None" = None) -> list[str]:
        """Create every table's view on ``con``; the statements that made them."""
        views = views if views is not None else _Views()
        return [self._create_view(con, name, views) for name in TABLES]

    def _create_view(self, con: duckdb.DuckDBPyConnection, name: str, views: "_Views") -> str:
        """The table's view; for a table with a bad part, a view that fails with a message naming it.

        DuckDB binds a view when it is created, reading the footer of every part
        of the table: one bad part would fail the connection and every query with it.
        A broken table instead gets a view of the right columns that raises its
        message when read, and the other tables keep working. Returns the statement used.
        """
        for attempt in range(2):
            statement, is_empty = self._view(name)
            try:
                con.execute(statement)
                why = None if is_empty else self._type_mismatch(con, name)
            except duckdb.Error as exc:
                why = _one_line(exc)
            bad = self.broken_parts(name) if why is not None else []
            if why is None or bad:
                break
            # No part to blame: a writer replaced one while DuckDB listed them. Once more.
        if why is not None:
            statement = f"CREATE OR REPLACE VIEW {name} AS {_failing_select(name, self.broken_table_message(name, why, bad))}"
            con.execute(statement)
            # Parts to blame: made again once they change. None to blame: tried again at every query.
            views.broken[name] = self.fingerprint([name])[name] if bad else None
        else:
            views.broken.pop(name, None)
        (views.empty.add if is_empty else views.empty.discard)(name)
        return statement

    def _type_mismatch(self, con: duckdb.DuckDBPyConnection, name: str) -> str | None:
        """Why the view's column types differ from the table's (a part of another schema), or None."""
        have = {r[0]: r[1] for r in con.execute(f"DESCRIBE {name}").fetchall()}
        want = _WANTED_TYPES.get(name)
        if want is None:  # the schema's types as DuckDB spells them: the same for every connection, asked once
            want = _WANTED_TYPES[name] = {
                r[0]: r[1] for r in con.execute(f"DESCRIBE (SELECT {_typed_columns(name, 'NULL')})").fetchall()}
        wrong = [f"{column} is {have[column]}, not {kind}" for column, kind in want.items()
                 if column in have and have[column] != kind]
        return "; ".join(wrong) or None

    def broken_parts(self, name: str) -> list[tuple[Path, str, str]]:
        """The parts of a table that cannot serve it: (path, kind, reason); footers only, so cheap."""
        out = []
        for path in sorted((self.tables_dir / name).glob("*.parquet")):
            problem = part_problem(name, path)
            if problem is not None:
                out.append((path, *problem))
        return out

    def broken_table_message(self, name: str, why: str, bad: list[tuple[Path, str, str]]) -> str:
        """One line naming the bad part(s) of a table (from :meth:`broken_parts`) and what to do."""
        if not bad:
            return f"catalog table {name} cannot be read ({why}); run `bertsecrets check --repair`"
        says = {"permission": "is not readable by this account", "unreadable": "is unreadable", "schema": "has the wrong schema"}
        shown = "; ".join(f"{path} {says[kind]}" + ("" if kind == "permission" else f" ({reason})")
                          for path, kind, reason in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        if all(kind == "permission" for _, kind, _ in bad):
            return (f"catalog table {name} cannot be read: {shown}{more}; "
                    "run as the store's owner, or let this account read the store (chmod -R a+rX)")
        return f"catalog table {name} cannot be read: {shown}{more}; run `bertsecrets check --repair`"

    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            self._local.views = _Views()
            con = self._local.con = self._connect(self._local.views)
        else:
            views = self._local.views
            # A table that had no parts when the views were made gets its real view once it has.
            for name in list(views.empty):
                if any((self.tables_dir / name).glob("*.parquet")):
                    self._create_view(con, name, views)
            # A broken table gets its real view back once its parts change (repaired).
            if views.broken:
                now = self.fingerprint(views.broken)
                for name, token in list(views.broken.items()):
                    if now[name] != token:
                        self._create_view(con, name, views)
        return con

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run the app's own SQL and return the last statement's result as Arrow.

        For queries written in bertsecrets' code only: this connection reads the
        store's files directly. A person's SQL goes through :class:`SQLConsole`.
        """
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise SQLError(f"SQL error: {_one_line(exc)}") from exc
        if not statements:
            raise SQLError("SQL error: no statement given")
        con = self._connection()
        try:
            for statement in statements[:-1]:
                con.execute(statement).fetchall()
            relation = con.sql(statements[-1].query, params=params if len(statements) == 1 else None)
            table = relation.to_arrow_table() if relation is not None else pa.table({})
        except (duckdb.IOException, duckdb.InvalidInputException) as exc:
            raise StoreCorrupt(unreadable_message(exc)) from exc
        except duckdb.Error as exc:
            raise SQLError(f"SQL error: {_one_line(exc)}") from exc
        return table

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return pylist(self.query(sql, params))


_WANTED_TYPES: dict[str, dict[str, str]] = {}


def pylist(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()``, with time-zoned timestamps converted without pyarrow's pandas check.

    pyarrow imports pandas (0.8 s on the 2-core machine) the first time it turns a timestamp with a
    time zone into Python; the runs' start and end times are such timestamps, so every command that
    shows a run paid for it. Here they become naive UTC values first and get their zone back after:
    the same datetimes pyarrow gives.
    """
    zoned = [(i, f) for i, f in enumerate(table.schema) if pa.types.is_timestamp(f.type) and f.type.tz]
    if not zoned:
        return table.to_pylist()
    for i, f in zoned:
        table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit)))
    zones = [(f.name, pa.lib.string_to_tzinfo(f.type.tz)) for _, f in zoned]
    rows = table.to_pylist()
    for row in rows:
        for name, zone in zones:
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=dt.timezone.utc).astimezone(zone)
    return rows


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@dataclass
class _Views:
    """What one connection's views are: tables with no parts yet, and broken tables with the
    fingerprint of their parts when the view was made."""

    empty: set[str] = field(default_factory=set)
    broken: dict[str, tuple | None] = field(default_factory=dict)


def _typed_columns(name: str, value: str) -> str:
    return ", ".join(f"CAST({value} AS {_duck_type(f.type)}) AS {f.name}" for f in TABLES[name])


def _failing_select(name: str, message: str) -> str:
    """A SELECT with the table's columns that raises ``message`` when any row or column is read.

    Every column and the filter call error(): the optimizer cannot fold a column
    to a constant and skip it, so a filtered or counted query fails too instead of
    answering from no rows.
    """
    fail = f"error({_quote(message)})"
    return f"SELECT {_typed_columns(name, fail)} FROM range(1) WHERE {fail} IS NULL"


_PART_PATH = re.compile(r"['\"]?(/[^'\"]*?/tables/[^/'\"]+/[^/'\"]+\.parquet)['\"]?")


def unreadable_message(exc: BaseException) -> str:
    """One line for a query that failed on a catalog file: the broken table's own message, or the file."""
    text = _one_line(exc)
    prefix = "Invalid Input Error: "
    if text.startswith(prefix + "catalog table "):
        return text[len(prefix):]
    found = _PART_PATH.search(text)
    if found:
        reason = re.sub(r"^[A-Za-z ]*Error: ", "", text.replace(found.group(0), "").strip(" :"))
        return f"catalog file {found.group(1)} is unreadable ({reason}); run `bertsecrets check --repair`"
    return f"catalog unreadable: {text}; run `bertsecrets check --repair`"


_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
}


def _duck_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if pa.types.is_list(arrow_type):
        return _duck_type(arrow_type.value_type) + "[]"
    return _DUCK_TYPES[arrow_type]


# -- a person's SQL: DuckDB's sandbox -------------------------------------------

#: Settings of the console's connection, given when it opens. No file, folder or URL
#: (COPY, ATTACH, EXPORT, read_csv, read_text, glob, INSTALL and LOAD are refused),
#: no extension installed or loaded on demand, no scan of the caller's Python variables,
#: no spilling to a temporary folder; and the lock stops a query from SETting any back.
SANDBOX_SETTINGS: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,
    "temp_directory": "",
    "lock_configuration": True,
}


#: What :meth:`SQLConsole.export` writes: format name -> the options of DuckDB's COPY.
EXPORT_FORMATS = {"csv": "FORMAT csv, HEADER", "parquet": "FORMAT parquet, COMPRESSION zstd"}


class SQLConsole:
    """A person's SQL on the catalog, run in DuckDB's own sandbox on a connection of its own.

    DuckDB's ``allowed_directories`` lets a query write wherever it may read, so the
    console's connection reads no file of the store at all: the catalog's tables are
    copied (through the same views the app reads) into a DuckDB file in a private
    temporary folder, which is opened read-only with :data:`SANDBOX_SETTINGS` and
    deleted at once (the open connection keeps it). A query sees the catalog's tables
    and nothing else, and any write is refused by DuckDB as a write to a read-only
    database. The copy is made again when the catalog has changed since (an ingest
    wrote, a label was saved). One query runs at a time; any thread may call.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._writer: duckdb.DuckDBPyConnection | None = None  # while :meth:`export` writes
        self._stamp: dict[str, tuple] | None = None

    def query(self, sql: str) -> pa.Table:
        """The last statement's result as Arrow; anything refused or wrong is an SQLError of one line."""
        if not sql.strip():
            raise SQLError("SQL error: no statement given")
        with self._lock:
            con = self._current()
            try:
                relation = con.sql(sql)
                return relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.Error as exc:
                raise _refusal(exc) from exc
            finally:
                _end_transaction(con)

    def interrupt(self) -> None:
        """Stop the query or export running now, if any: it ends with "the query was interrupted"."""
        for con in (self._con, self._writer):
            if con is not None:
                con.interrupt()

    def export(self, result: pa.Table, path: str | Path, fmt: str) -> Path:
        """Write a result of :meth:`query` to ``path`` as CSV (with a header) or Parquet; the path written.

        The sandboxed connection can write no file, which is what makes it a sandbox
        (DuckDB's ``allowed_directories`` would let a person's SQL write there too). So
        the result is handed, as Arrow, to a DuckDB connection of its own that holds that
        one table, reads nothing else and runs one COPY of it: no SQL of a person ever
        runs where a file can be written. The file is written under a temporary name
        beside ``path`` and renamed, so a half-written export never has the final name.
        """
        if fmt not in EXPORT_FORMATS:
            raise SQLError(f"cannot export as {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
        path = Path(path)
        if not path.parent.is_dir():
            raise StoreError(f"cannot write {path}: the folder {path.parent} does not exist; "
                             "create it first or choose another path")
        if path.is_dir():
            raise StoreError(f"cannot write {path}: it is a folder; give a file name")
        part = path.with_name(f".{path.name}.part")
        writer = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                     "autoload_known_extensions": False,
                                                     "python_enable_replacements": False})
        self._writer = writer  # for interrupt(); the query's lock is not taken: a query may run meanwhile
        try:
            writer.register("result", result)
            writer.execute(f"COPY result TO {_quote(part)} ({EXPORT_FORMATS[fmt]})")
            os.chmod(part, file_mode())
            os.replace(part, path)
        except (duckdb.Error, OSError) as exc:
            part.unlink(missing_ok=True)
            if isinstance(exc, duckdb.InterruptException):
                raise SQLError("the export was interrupted; nothing was written") from exc
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
            raise StoreError(f"cannot write {path}: {reason}; choose another file") from exc
        finally:
            self._writer = None
            writer.close()
        return path

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def _current(self) -> duckdb.DuckDBPyConnection:
        # The stamp is taken before copying: a part written meanwhile makes the next query copy again.
        stamp = self.catalog.fingerprint()
        if self._con is None or stamp != self._stamp:
            if self._con is not None:
                self._con.close()
                self._con = None
            self._con = sandboxed_copy(self.catalog)
            self._stamp = stamp
        return self._con


def sandboxed_copy(catalog: Catalog) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed DuckDB connection holding a copy of every catalog table."""
    folder = tempfile.mkdtemp(prefix="bertsecrets-sql-")
    path = os.path.join(folder, "catalog.duckdb")  # the file's stem names the database in DuckDB's messages
    try:
        source = catalog.connect()
        try:
            source.execute(f"ATTACH {_quote(Path(path))} AS copy")
            for name in TABLES:
                try:
                    source.execute(f"CREATE TABLE copy.{name} AS SELECT * FROM {name}")
                except duckdb.Error as exc:
                    message = unreadable_message(exc)
                    if not message.startswith(f"catalog table {name} "):
                        raise
                    # One broken table stays broken in the copy, naming its part; the others answer.
                    source.execute(f"CREATE VIEW copy.{name} AS {_failing_select(name, message)}")
            source.execute("DETACH copy")
        except duckdb.Error as exc:
            if folder in str(exc):
                raise StoreError(f"cannot write the SQL console's copy of the catalog in {folder}: {_one_line(exc)}; "
                               "free some space there or point TMPDIR at another folder") from exc
            raise StoreCorrupt(f"catalog unreadable: {_one_line(exc)}; run `bertsecrets check`") from exc
        finally:
            source.close()
        con = duckdb.connect(path, read_only=True, config=SANDBOX_SETTINGS)
    finally:
        # Deleted while open: DuckDB keeps reading its handle, and no query can reach the file by name.
        shutil.rmtree(folder, ignore_errors=True)
    if os.path.exists(folder):  # a system that cannot delete open files: delete it with the connection
        weakref.finalize(con, shutil.rmtree, folder, True)
    return con


def _end_transaction(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back a transaction the query left open ("BEGIN; ..."), so that the next query starts clean."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # none was open


def _refusal(exc: duckdb.Error) -> StoreError:
    """DuckDB's error as one line that says what the console allows."""
    message = _one_line(exc)
    if message.startswith("Invalid Input Error: catalog table "):  # a broken table's own message
        return StoreCorrupt(unreadable_message(exc))
    write = re.search(r'statement of type "(\w+)" on database "[^"]*" which is attached in read-only mode', message)
    if write:
        return SQLError(f"the catalog is read-only here: this {write[1]} statement would change it; use SELECT "
                        "(bertsecrets commands change the catalog)")
    if isinstance(exc, duckdb.PermissionException) or "belongs to an attached database" in message:
        return SQLError("refused: the SQL console is read-only and reads the catalog's tables only, "
                        f"no files, URLs or extensions ({message})")
    if "configuration has been locked" in message:
        return SQLError(f"refused: the SQL console's DuckDB settings are locked ({message})")
    if isinstance(exc, duckdb.InterruptException):
        return SQLError("the query was interrupted")
    return SQLError(f"SQL error: {message}")
