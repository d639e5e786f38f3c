"""A one-line input that remembers what was entered: up and down walk through the history."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class HistoryInput(Input):
    """An Input with a history of submitted values (newest last)."""

    BINDINGS = [
        Binding("up", "history(-1)", "older", show=False),
        Binding("down", "history(1)", "newer", show=False),
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[str] = []
        self._at = 0  # len(history): the line being written

    def remember(self, value: str) -> None:
        value = value.strip()
        if value and (not self.history or self.history[-1] != value):
            self.history.append(value)
        self._at = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._at = min(max(self._at + step, 0), len(self.history))
        self.value = self.history[self._at] if self._at < len(self.history) else ""
        self.cursor_position = len(self.value)
