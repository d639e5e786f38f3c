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

    DataTable reads a str label or cell as Rich markup, emoji codes included; names and
    values come from the store (or a person's SQL), so they are shown as written.
    ``marks`` adds a sign to a column's header (the sort order, say); the column's key stays its name.
    """
    table.clear(columns=True)
    rows = [[as_written(v) for v in row] for row in rows]
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


def as_written(value: Any) -> Any:
    """``value`` for a DataTable cell that shows it as written.

    A string that markup or emoji codes would change ("[/x]", "[bold]", ":smile:")
    becomes ``Text``; any other string stays a string, so the cell's value reads as
    before (``get_row_at``, sorting).
    """
    if not isinstance(value, str):
        return value
    try:
        unchanged = Text.from_markup(value).plain == value
    except Exception:  # not even valid markup ("[/x]" closes nothing)
        unchanged = False
    return value if unchanged else Text(value)
