"""Errors raised by the store, each a one-line message that says what to do."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

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


class StoreReadOnly(StoreError):
    """The store (or a folder in it) cannot be written by this process."""


#: What the kernel answers a write to a folder this account may not change.
_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def writing(folder: str | os.PathLike) -> Iterator[None]:
    """Turn "permission denied" and "read-only file system" inside the block into one line naming ``folder``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _READ_ONLY_ERRNOS:
            raise
        raise StoreReadOnly(
            f"cannot write to {Path(folder)}: {exc.strerror.lower() if exc.strerror else 'permission denied'}; "
            "this store is read-only here (run as its owner, or on a writable copy)"
        ) from exc
