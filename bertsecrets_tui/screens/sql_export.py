"""The SQL screen's export dialog: where to write the result; the file's ending picks CSV or Parquet."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from bertsecrets.core import config

#: File endings and the format each writes.
ENDINGS = {".csv": "csv", ".parquet": "parquet"}


def default_path(now: float | None = None) -> Path:
    """A new file in the exports folder, named by the time: sql-20240501-120000.csv."""
    return config.exports_path().absolute() / time.strftime("sql-%Y%m%d-%H%M%S.csv", time.localtime(now))


def format_of(path: str) -> str | None:
    """"csv" or "parquet" from the file's ending (any case), or None."""
    return ENDINGS.get(Path(path.strip()).suffix.lower())


class ExportDialog(ModalScreen[tuple[Path, str] | None]):
    """Asks for a file name; dismissed with (path, format), or None when Esc goes back.

    In a web browser (``web``) only a file name is taken: the file is written in the
    server's exports folder, never elsewhere on the server, and sent to the browser.
    """

    BINDINGS = [Binding("escape", "dismiss_none", "back")]

    def __init__(self, rows: int, suggested: Path, web: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.suggested = suggested
        self.web = web

    def compose(self) -> ComposeResult:
        with Vertical(id="sql-export"):
            rows = f"{self.rows} row{'s' if self.rows != 1 else ''}"
            yield Static(f"Download the result ({rows}) as:" if self.web else f"Export the result ({rows}) to:")
            yield Input(self.suggested.name if self.web else str(self.suggested), id="sql-export-path")
            yield Static("ending .csv or .parquet · Enter writes it · Esc goes back", id="sql-export-note",
                         classes="note")

    def on_mount(self) -> None:
        box = self.query_one(Input)
        box.focus()
        box.cursor_position = len(box.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        fmt = format_of(text)
        if fmt is None:
            self.query_one("#sql-export-note", Static).update(
                Text("the file must end in .csv or .parquet", style="red"))
            return
        if self.web:
            if Path(text).name != text or text.startswith("."):
                self.query_one("#sql-export-note", Static).update(
                    Text("a file name only: it is written in the server's exports folder and sent to you",
                         style="red"))
                return
            path = self.suggested.parent / text
        else:
            path = Path(text).expanduser()
            if not path.is_absolute():
                path = Path.cwd() / path
        self.dismiss((path, fmt))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
