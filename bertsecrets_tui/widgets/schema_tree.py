"""The catalog's tables and columns as a tree, with what docs/catalog.md says of each."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import Tree

from bertsecrets.tui import catalog_notes
from bertsecrets.tui.widgets.sql_complete import Schema


@dataclass(frozen=True)
class Entry:
    """A node of the tree: a table, or one of its columns (with its SQL type)."""

    table: str
    column: str | None = None
    type: str = ""

    @property
    def name(self) -> str:
        return self.column or self.table


def describe(entry: Entry) -> str:
    """What the catalog's doc says of a table or column (a column the doc names only in its table's words: those)."""
    about_table = catalog_notes.TABLES.get(entry.table, "not described in docs/catalog.md")
    if entry.column is None:
        return f"{entry.table}: {about_table}"
    about = catalog_notes.COLUMNS.get(entry.table, {}).get(entry.column)
    head = f"{entry.table}.{entry.column} {entry.type}"
    return f"{head}: {about}" if about else f"{head} (the table: {about_table})"


class SchemaTree(Tree[Entry]):
    """Tables (collapsed) with their columns and types; Enter on a column asks to put its name in the query."""

    class Chosen(Message):
        """A column was chosen (Enter or a click): its name goes into the query."""

        def __init__(self, entry: Entry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, **kwargs) -> None:
        super().__init__("catalog", **kwargs)
        self.show_root = False
        self.guide_depth = 2

    def show(self, schema: Schema) -> None:
        self.clear()
        for table, columns in schema.tables.items():
            node = self.root.add(Text.assemble((table, "bold"), " ", (str(len(columns)), "dim")), data=Entry(table),
                                 expand=False)
            for column, kind in columns:
                node.add_leaf(Text.assemble(column, " ", (kind, "dim")), data=Entry(table, column, kind))

    def on_focus(self) -> None:
        if self.cursor_line < 0 and self.root.children:  # a cursor to start from, and its words beside
            self.cursor_line = 0

    def on_tree_node_selected(self, event: Tree.NodeSelected[Entry]) -> None:
        entry = event.node.data
        if entry is not None and entry.column is not None:
            self.post_message(self.Chosen(entry))
