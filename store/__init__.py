"""The artifact store: attention maps in Zarr, metadata in Parquet behind DuckDB views.

Only this package knows the on-disk layout. It never imports torch or Textual,
so the TUI and the SQL command start fast.
"""

from bertsecrets.store.errors import StoreError, StoreCorrupt, NotAStore
from bertsecrets.store.keys import content_key
from bertsecrets.store.store import Store

__all__ = ["Store", "StoreError", "StoreCorrupt", "NotAStore", "content_key"]
