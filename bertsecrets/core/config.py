"""Environment variables and default paths: the one place that reads them."""

from __future__ import annotations

import os
from pathlib import Path

#: Where the store lives unless ``--store`` says otherwise.
STORE_ENV = "BERTSECRETS_STORE"
DEFAULT_STORE = "bertsecrets-store"

#: A folder in the original GLUE layout (``<dir>/MRPC/dev.tsv``).
GLUE_ENV = "GLUE_DIR"

#: Set to 1 to see tracebacks instead of one-line errors.
DEBUG_ENV = "BERTSECRETS_DEBUG"

#: Who gives a label in the labelling screen and ``labels import``.
LABELLER_ENV = "BERTSECRETS_USER"

#: Compute threads of a unit of work on a worker of a running cluster (``ingest --scheduler``); default: torch's.
THREADS_ENV = "BERTSECRETS_THREADS"

#: The secret ``browse --web`` asks for (kept out of the command line, which other users can read).
WEB_SECRET_ENV = "BERTSECRETS_WEB_SECRET"

#: Where the browser writes exported maps, grids and pages.
EXPORTS_ENV = "BERTSECRETS_EXPORTS"
DEFAULT_EXPORTS = "bertsecrets-exports"


def store_path(explicit: str | os.PathLike | None = None) -> Path:
    """The store folder: the explicit argument, else $BERTSECRETS_STORE, else ./bertsecrets-store."""
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE).expanduser()


def glue_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local GLUE folder: the explicit argument, else $GLUE_DIR, else None (use the hub)."""
    value = explicit or os.environ.get(GLUE_ENV)
    return Path(value).expanduser() if value else None


def worker_threads() -> int | None:
    """The compute threads a worker's unit of work uses, from $BERTSECRETS_THREADS (None: torch's default)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def labeller(explicit: str | None = None) -> str:
    """Who is labelling: the explicit name (``--labeller``), else $BERTSECRETS_USER, else the user name."""
    return explicit or os.environ.get(LABELLER_ENV) or os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


def exports_path() -> Path:
    """The browser's exports folder: $BERTSECRETS_EXPORTS, else ./bertsecrets-exports."""
    return Path(os.environ.get(EXPORTS_ENV) or DEFAULT_EXPORTS).expanduser()
