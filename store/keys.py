"""Deterministic content keys: the same settings always give the same key."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal settings give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_key(kind: str, fields: dict[str, Any], length: int = 16) -> str:
    """``<kind>-<hash>`` of everything that decides an artifact's bytes."""
    digest = hashlib.sha256(canonical_json({"kind": kind, **fields}).encode()).hexdigest()
    return f"{kind}-{digest[:length]}"
