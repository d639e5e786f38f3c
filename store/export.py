"""Printing and saving query results: a Rich table (values printed as they are), CSV, JSON or Parquet."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bertsecrets.store.errors import StoreError


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
    return str(value)


def rich_table(table: pa.Table, max_rows: int | None = None):
    """A Rich table of ``table``; names and values are Text, so "[/x]" or ":smile:" print as written."""
    from rich.table import Table
    from rich.text import Text

    out = Table(show_lines=False, header_style="bold")
    for name in table.column_names:
        numeric = pa.types.is_integer(table.schema.field(name).type) or pa.types.is_floating(table.schema.field(name).type)
        out.add_column(Text(name), justify="right" if numeric else "left", overflow="ellipsis", no_wrap=numeric)
    shown = table if max_rows is None else table.slice(0, max_rows)
    for row in shown.to_pylist():
        out.add_row(*(Text(_cell(v)) for v in row.values()))
    return out


def check_output(fmt: str, output: str | None) -> None:
    """Refuse an output that cannot be written before any work is done: one line naming what is wrong."""
    if fmt == "table" and output:
        raise StoreError("--output needs --format csv, json or parquet")
    if not output:
        return
    folder = os.path.dirname(output) or "."
    if not os.path.isdir(folder):
        raise StoreError(f"cannot write {output}: the folder {folder} does not exist; create it first or choose another path")
    if os.path.isdir(output):
        raise StoreError(f"cannot write {output}: it is a folder; give a file name")


def write_result(table: pa.Table, fmt: str, output: str | None, max_rows: int | None, console) -> None:
    """Write a query result in ``fmt`` to ``output`` (a path) or standard output."""
    check_output(fmt, output)
    if fmt == "table":
        console.print(rich_table(table, max_rows))
        if max_rows is not None and table.num_rows > max_rows:
            console.print(f"[dim]{table.num_rows - max_rows} more rows (use --max-rows or --format csv)[/]")
        else:
            console.print(f"[dim]{table.num_rows} row{'s' if table.num_rows != 1 else ''}[/]")
        return
    if fmt == "parquet":
        if output is None and sys.stdout.isatty():
            raise StoreError("Parquet is binary: pass --output FILE (or pipe the output)")
        if output:
            _save(output, lambda fh: pq.write_table(table, fh))
        else:
            pq.write_table(table, sys.stdout.buffer)
        return
    if fmt == "csv":
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)
        data = buffer.getvalue()
    elif fmt == "json":
        data = (json.dumps(table.to_pylist(), indent=2, default=str) + "\n").encode()
    else:  # pragma: no cover - argparse restricts the choices
        raise StoreError(f"unknown format {fmt!r}")
    if output:
        _save(output, lambda fh: fh.write(data))
    else:
        sys.stdout.write(data.decode())


def _save(output: str, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``output`` through ``write``; a failed write (a full disk) leaves no half file behind.

    An OSError names ``output``, so the command's one-line message says which file it could not write.
    """
    path = Path(output)
    try:
        fh = open(path, "wb")
    except OSError as exc:
        exc.filename = exc.filename or output
        raise
    try:
        with fh:
            write(fh)
    except BaseException as exc:
        if path.is_file():  # what was written is cut short; never remove a device such as /dev/full
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            exc.filename = exc.filename or output
        raise
