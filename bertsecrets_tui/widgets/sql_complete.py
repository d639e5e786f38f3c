"""Completion of the catalog's table and column names in the SQL input, in textual-autocomplete's dropdown."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from textual import events
from textual.content import Content
from textual_autocomplete import AutoComplete, DropdownItem, TargetState

#: The name being typed just before the cursor, with the table (or alias) before a dot, if any.
_TYPED = re.compile(r"(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)?$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Most names the dropdown lists at once.
MAX_ITEMS = 30


@dataclass
class Schema:
    """The catalog's tables and their columns with SQL types, in the catalog's order."""

    tables: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict]) -> "Schema":
        """From ``store.queries.catalog_columns`` rows (table, column, type)."""
        tables: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            tables.setdefault(row["table"], []).append((row["column"], row["type"]))
        return cls(tables)

    def tables_of(self, column: str) -> list[str]:
        return [t for t, columns in self.tables.items() if any(c == column for c, _ in columns)]


def typed_at(text: str, cursor: int) -> tuple[int, str, str | None]:
    """The name typed before ``cursor``: (where it starts, what is typed, the name before its dot or None)."""
    found = _TYPED.search(text[:cursor])
    word = found.group(2) or ""
    return cursor - len(word), word, found.group(1)


def suggestions(schema: Schema, text: str, cursor: int) -> list[tuple[str, str]]:
    """(name, what it is) that the name at the cursor may complete to, best first.

    Names start with what is typed, in any case. After ``table.`` only that
    table's columns; after another name and a dot (an alias) the columns of the
    tables the query names. Otherwise tables first, then the columns of the
    tables the query names, then every other column; a column in several
    tables is listed once.
    """
    _, word, qualifier = typed_at(text, cursor)
    if not word and qualifier is None:
        return []
    low = word.lower()
    named = [t for t in dict.fromkeys(n.lower() for n in _NAME.findall(text)) if t in schema.tables]
    out: dict[str, str] = {}
    if qualifier is not None:
        tables = [qualifier.lower()] if qualifier.lower() in schema.tables else named
        for table in tables:
            for column, kind in schema.tables[table]:
                if column.lower().startswith(low):
                    out.setdefault(column, f"{kind} · {table}")
        return list(out.items())
    if not word:
        return []
    for table in schema.tables:
        if table.lower().startswith(low):
            out[table] = "table"
    for table in [*named, *(t for t in schema.tables if t not in named)]:
        for column, kind in schema.tables[table]:
            if column.lower().startswith(low) and column not in out:
                others = len(schema.tables_of(column)) - 1
                out[column] = f"{kind} · {table}" + (f" +{others}" if others else "")
    return list(out.items())


def complete(text: str, cursor: int, name: str) -> tuple[str, int]:
    """``text`` with the name typed before ``cursor`` replaced by ``name``, and the cursor after it."""
    start, _, _ = typed_at(text, cursor)
    return text[:start] + name + text[cursor:], start + len(name)


class SQLComplete(AutoComplete):
    """The dropdown under the SQL input: Tab takes the highlighted name, Enter runs the query as typed.

    Enter is left to the input so that a query never gets a name it was not
    given, and ↓ opens the dropdown only while it shows (otherwise it walks the
    input's history).
    """

    def __init__(self, target, schema: Schema | None = None, **kwargs) -> None:
        super().__init__(target, candidates=None, prevent_default_enter=False, **kwargs)
        self.schema = schema or Schema()

    def get_search_string(self, target_state: TargetState) -> str:
        return typed_at(target_state.text, target_state.cursor_position)[1]

    def get_candidates(self, target_state: TargetState) -> list[DropdownItem]:
        found = suggestions(self.schema, target_state.text, target_state.cursor_position)[:MAX_ITEMS]
        width = max((len(name) for name, _ in found), default=0)
        return [DropdownItem(Content(name.ljust(width + 1)) + Content.styled(what, "dim"))
                for name, what in found]

    def get_matches(self, target_state: TargetState, candidates: list[DropdownItem],
                    search_string: str) -> list[DropdownItem]:
        return candidates  # already the names that start with what is typed, in their order

    def should_show_dropdown(self, search_string: str) -> bool:
        count = self.option_list.option_count
        if count == 0 or (not search_string and typed_at(self.target.value, self.target.cursor_position)[2] is None):
            return False
        only = self.option_list.get_option_at_index(0)
        return count > 1 or only.value.split(" ")[0] != search_string

    def apply_completion(self, value: str, state: TargetState) -> None:
        name = value.split(" ")[0]
        text, cursor = complete(state.text, state.cursor_position, name)
        target = self.target
        target.value = text
        target.cursor_position = cursor
        self._rebuild_options(self._get_target_state(), self.get_search_string(self._get_target_state()))

    def _listen_to_messages(self, event: events.Event) -> None:
        # textual-autocomplete's key handling, but Enter always reaches the input and ↓ opens no hidden dropdown.
        if isinstance(event, events.Key):
            if event.key == "enter":
                self.action_hide()
                return
            if event.key == "down" and not self.display:
                return
        super()._listen_to_messages(event)
