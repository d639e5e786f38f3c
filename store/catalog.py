"""The catalog: Parquet parts per table, read through DuckDB views.

DuckDB lets one process write a database file or many read it, never both.
So the catalog's rows live in immutable Parquet parts that a writer replaces
atomically (write to a temporary file, then rename), and every reader opens
its own in-memory DuckDB with views over the parts. An ingest never locks a
reader out, and a reader never blocks an ingest.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bertsecrets.store.errors import SQLError, StoreCorrupt
from bertsecrets.store.schema import TABLES

#: Statement kinds a read-only connection runs; DESCRIBE, SHOW and SUMMARIZE parse as SELECT.
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}

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
        """Run read-only SQL and return the last statement's result as Arrow.

        Anything but a query (INSERT, CREATE, COPY, ATTACH, ...) is refused:
        the catalog is changed by bertsecrets commands only.
        """
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise SQLError(f"SQL error: {_one_line(exc)}") from exc
        if not statements:
            raise SQLError("SQL error: no statement given")
        for statement in statements:
            if statement.type not in _READ_ONLY:
                kind = statement.type.name
                raise SQLError(
                    f"the catalog is read-only here: {kind} statements are refused; use SELECT "
                    "(bertsecrets commands change the catalog)"
                )
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
