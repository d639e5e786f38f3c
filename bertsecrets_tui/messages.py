"""Messages the app and its screens exchange (a widget's own messages live in the widget)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class Loaded(Message, bubble=False):
    """A store read done in a worker thread finished: ``value``, or ``error`` as one line to show in place."""

    def __init__(self, key: str, value: Any = None, error: str | None = None, read_key: Any = None) -> None:
        super().__init__()
        self.key, self.value, self.error = key, value, error
        #: what a keyed read was made for (``StoreScreen.load_keyed``), so that its error, too, can be dropped
        #: once the cursor has left it; None for a read that is not keyed
        self.read_key = read_key


class StoreChanged(Message, bubble=False):  # the app hands it to the current screen: it must not come back up
    """Catalog tables changed on disk (an ingest, an analysis or another labeller wrote them)."""

    def __init__(self, tables: frozenset[str]) -> None:
        super().__init__()
        self.tables = tables


class RunFound(Message, bubble=False):
    """The run to show after a task or seed key (``run_id``), or None, with ``words`` saying which or why not."""

    def __init__(self, run_id: str | None, words: str) -> None:
        super().__init__()
        self.run_id, self.words = run_id, words
