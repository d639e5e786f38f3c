"""Printing and saving query results: a Rich table, CSV, JSON or Parquet."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

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
    from rich.table import Table

    out = Table(show_lines=False, header_style="bold")
    for name in table.column_names:
        numeric = pa.types.is_integer(table.schema.field(name).type) or pa.types.is_floating(table.schema.field(name).type)
        out.add_column(name, justify="right" if numeric else "left", overflow="ellipsis", no_wrap=numeric)
    shown = table if max_rows is None else table.slice(0, max_rows)
    for row in shown.to_pylist():
        out.add_row(*(_cell(v) for v in row.values()))
    return out


def write_result(table: pa.Table, fmt: str, output: str | None, max_rows: int | None, console) -> None:
    """Write a query result in ``fmt`` to ``output`` (a path) or standard output."""
    if fmt == "table":
        if output:
            raise StoreError("--output needs --format csv, json or parquet")
        console.print(rich_table(table, max_rows))
        if max_rows is not None and table.num_rows > max_rows:
            console.print(f"[dim]{table.num_rows - max_rows} more rows (use --max-rows or --format csv)[/]")
        else:
            console.print(f"[dim]{table.num_rows} row{'s' if table.num_rows != 1 else ''}[/]")
        return
    if fmt == "parquet":
        if output is None and sys.stdout.isatty():
            raise StoreError("Parquet is binary: pass --output FILE (or pipe the output)")
        sink = output if output else sys.stdout.buffer
        pq.write_table(table, sink)
        return
    if fmt == "csv":
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)
        text = buffer.getvalue().decode()
    elif fmt == "json":
        text = json.dumps(table.to_pylist(), indent=2, default=str) + "\n"
    else:  # pragma: no cover - argparse restricts the choices
        raise StoreError(f"unknown format {fmt!r}")
    if output:
        with open(output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
