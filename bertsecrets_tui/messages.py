"""Messages the app and its screens exchange (a widget's own messages live in the widget)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class Loaded(Message, bubble=False):
    """A store read done in a worker thread finished: ``value``, or ``error`` as one line to show in place."""

    def __init__(self, key: str, value: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.key, self.value, self.error = key, value, error


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
