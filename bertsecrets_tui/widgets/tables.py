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


def fill(table: DataTable, columns: Sequence[str], rows: Sequence[Sequence[Any]],
         marks: dict[str, str] | None = None) -> None:
    """Replace ``table``'s columns and rows (cells: text, numbers or Rich renderables).

    ``marks`` adds a sign to a column's header (the sort order, say); the column's key stays its name.
    """
    table.clear(columns=True)
    for i, name in enumerate(columns):
        label = f"{name} {marks[name]}" if marks and name in marks else name
        width = max([len(label), *(_width(row[i]) for row in rows)])
        table.add_column(Text(label), key=name, width=min(width, MAX_WIDTH))
    table.add_rows(rows)


def _width(value: Any) -> int:
    if isinstance(value, Text):
        return value.cell_len
    if isinstance(value, float):
        return len(f"{value:.2f}")  # as DataTable prints floats
    return len(str(value))
