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

import os
import re
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bertsecrets.store.errors import SQLError, StoreCorrupt, StoreError
from bertsecrets.store.schema import TABLES

_EMPTY_PART = "_schema"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not *.parquet: the views' globs must never see a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        self.part_path(table, part).unlink(missing_ok=True)

    def has_part(self, table: str, part: str) -> bool:
        return self.part_path(table, part).exists()

    def read_part(self, table: str, part: str) -> pa.Table | None:
        """One part as Arrow, or None when it does not exist."""
        path = self.part_path(table, part)
        try:
            return pq.read_table(path)
        except FileNotFoundError:
            return None
        except (pa.ArrowInvalid, OSError) as exc:
            raise StoreCorrupt(
                f"catalog file {path} is unreadable ({exc}); run `bertsecrets check` to see what else is affected"
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
            source = f"read_parquet({_quote(folder / '*.parquet')}, union_by_name = true)"
            empty = False
        else:
            # A store from before this table existed: an empty, typed view until a part appears.
            columns = ", ".join(f"CAST(NULL AS {_duck_type(f.type)}) AS {f.name}" for f in TABLES[name])
            source = f"(SELECT {columns} LIMIT 0)"
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
        return self._connect(set())

    def _connect(self, empty: set[str]) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        for name in TABLES:
            self._create_view(con, name, empty)
        return con

    def _create_view(self, con: duckdb.DuckDBPyConnection, name: str, empty: set[str]) -> None:
        statement, is_empty = self._view(name)
        try:
            con.execute(statement)
        except duckdb.Error as exc:
            raise StoreCorrupt(f"catalog table {name} is unreadable: {_one_line(exc)}; run `bertsecrets check`") from exc
        (empty.add if is_empty else empty.discard)(name)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            self._local.empty = set()
            con = self._local.con = self._connect(self._local.empty)
        else:
            # A table that had no parts when the views were made gets its real view once it has.
            for name in list(self._local.empty):
                if any((self.tables_dir / name).glob("*.parquet")):
                    self._create_view(con, name, self._local.empty)
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
            raise StoreCorrupt(f"catalog unreadable: {_one_line(exc)}; run `bertsecrets check`") from exc
        except duckdb.Error as exc:
            raise SQLError(f"SQL error: {_one_line(exc)}") from exc
        return table

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return self.query(sql, params).to_pylist()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


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
        """Stop the query running now, if any: it ends with "the query was interrupted"."""
        con = self._con
        if con is not None:
            con.interrupt()

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
                source.execute(f"CREATE TABLE copy.{name} AS SELECT * FROM {name}")
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


def _refusal(exc: duckdb.Error) -> SQLError:
    """DuckDB's error as one line that says what the console allows."""
    message = _one_line(exc)
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
