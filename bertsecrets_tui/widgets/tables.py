"""Filling a DataTable in one go, with column widths taken from what it shows.

DataTable sizes its columns itself, but can miss rows added in the same
refresh as the columns; giving the widths makes every table right at once.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual.widgets import DataTable

#: Widest column, in cells; longer values are cut.
MAX_WIDTH = 60


def fill(table: DataTable, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Replace ``table``'s columns and rows (cells: text, numbers or Rich renderables).

    DataTable reads a str label or cell as Rich markup, emoji codes included; names and
    values come from the store (or a person's SQL), so strings go in as ``Text``.
    """
    table.clear(columns=True)
    rows = [[Text(v) if isinstance(v, str) else v for v in row] for row in rows]
    for i, name in enumerate(columns):
        width = max([len(name), *(_width(row[i]) for row in rows)])
        table.add_column(Text(name), key=name, width=min(width, MAX_WIDTH))
    table.add_rows(rows)


def _width(value: Any) -> int:
    if isinstance(value, Text):
        return value.cell_len
    if isinstance(value, float):
        return len(f"{value:.2f}")  # as DataTable prints floats
    return len(str(value))
