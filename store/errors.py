"""Errors raised by the store, each a one-line message that says what to do."""

from __future__ import annotations

from bertsecrets.core.errors import UserError


class StoreError(UserError):
    """Something about the store stops the operation."""


class NotAStore(StoreError):
    """The folder exists but is not a bertsecrets store."""


class StoreCorrupt(StoreError):
    """A piece of the store is missing or unreadable."""

    exit_code = 3


class SQLError(StoreError):
    """A query the catalog could not run (or refused: the catalog is read-only here)."""
