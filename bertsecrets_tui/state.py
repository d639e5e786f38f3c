"""What the person is looking at, shared by every screen: run, model, input, layer, head."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Selection:
    """The current run and map; layers and heads 0-indexed as stored."""

    run_id: str | None = None
    role: str = "finetuned"
    example: int = 0
    layer: int = 0
    head: int = 0
