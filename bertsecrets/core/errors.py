"""The one error type users see: a message on one line that says what to do."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, not a bug.

    The CLI prints ``str(error)`` on one line and exits with ``exit_code``;
    no traceback unless ``BERTSECRETS_DEBUG=1``.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(" ".join(message.split()))
        if exit_code is not None:
            self.exit_code = exit_code
