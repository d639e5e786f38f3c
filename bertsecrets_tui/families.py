"""The head families view's logic: heads placed on a character canvas, the nearest head in a direction, the panel.

No Textual here: the screen (screens/families.py) and its widget only call these
functions, which the tests check on hand-made positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.text import Text

from bertsecrets.store.labels import PATTERN_CLASSES

#: Exact 256-colour indices, one per family (distinct on dark and light backgrounds), cycled past ten.
FAMILY_COLOURS = (39, 208, 40, 199, 226, 45, 160, 141, 34, 215)
#: What the points are coloured by (`c` cycles): their family, or a number per head.
COLOURINGS = ("family", "change", "stability")
#: Arrow keys: (column step, row step) on the canvas.
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class RoleFamilies:
    """One model's heads: layer-major arrays over every head."""

    layer: np.ndarray
    head: np.ndarray
    family: np.ndarray
    x: np.ndarray
    y: np.ndarray
    change: np.ndarray
    n_families: int
    silhouette: float | None

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> "RoleFamilies":
        get = lambda k, dtype=float: np.array([r[k] if r[k] is not None else np.nan for r in rows], dtype=dtype)
        sil = rows[0]["silhouette"] if rows else None
        return cls(get("layer", int), get("head", int), get("family", int), get("x"), get("y"), get("change"),
                   int(rows[0]["n_families"]) if rows else 0, None if sil is None or sil != sil else float(sil))

    def __len__(self) -> int:
        return len(self.layer)

    def index(self, layer: int, head: int) -> int:
        found = np.flatnonzero((self.layer == layer) & (self.head == head))
        return int(found[0]) if len(found) else 0


@dataclass
class FamilyData:
    """What the view shows of one run: both models' families and each head's other numbers."""

    run_id: str
    task: str
    n_layers: int
    n_heads: int
    roles: dict[str, RoleFamilies]
    shares: dict[tuple[str, int, int], dict[str, float]] = field(default_factory=dict)  # (role, l, h) -> class
    share_source: str = ""
    ablation: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # (l, h) -> ablation row
    metric: str = ""
    stability: dict[tuple[int, int], tuple[float, int]] = field(default_factory=dict)  # (l, h) -> (distance, runs)


def cells(x: np.ndarray, y: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Canvas (column, row) of each point, the embedding scaled to ``width`` x ``height`` with one cell of margin.

    The axes keep their ratio, counting a cell twice as tall as wide, so distances look as they are.
    """
    if len(x) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    span_x, span_y = float(np.ptp(x)) or 1.0, float(np.ptp(y)) or 1.0
    usable_w, usable_h = max(width - 2, 1), max(height - 2, 1)
    scale = min((usable_w - 1) / span_x, 2 * (usable_h - 1) / span_y) if (usable_w > 1 and usable_h > 1) else 0.0
    col = 1 + np.round((x - x.min()) * scale + (usable_w - 1 - span_x * scale) / 2).astype(int)
    row = 1 + np.round((y - y.min()) * scale / 2 + (usable_h - 1 - span_y * scale / 2) / 2).astype(int)
    return np.clip(col, 0, width - 1), np.clip(row, 0, height - 1)


def nearest(col: np.ndarray, row: np.ndarray, current: int, direction: str) -> int:
    """The head nearest to ``current`` among those lying in ``direction`` (within 45 degrees or wider, beside it);
    ``current`` when there is none. A row counts as two columns (cells are twice as tall as wide)."""
    dc, dr = DIRECTIONS[direction]
    dx = (col - col[current]).astype(float)
    dy = 2.0 * (row - row[current]).astype(float)
    along = dx * dc + dy * dr
    across = np.abs(dx * dr) + np.abs(dy * dc)
    ahead = along > 0
    ahead[current] = False
    if not ahead.any():
        # Heads on the same cell: step through them in their order rather than getting stuck.
        same = np.flatnonzero((col == col[current]) & (row == row[current]))
        if len(same) > 1 and direction in ("right", "down"):
            later = same[same > current]
            return int(later[0]) if len(later) else current
        if len(same) > 1:
            earlier = same[same < current]
            return int(earlier[-1]) if len(earlier) else current
        return current
    cost = np.where(ahead, along + 2.0 * across, np.inf)
    return int(np.argmin(cost))


def values_of(data: FamilyData, role: str, colouring: str) -> np.ndarray | None:
    """The number of each head the points are coloured by (None for families or when nothing is stored)."""
    fam = data.roles[role]
    if colouring == "change":
        return fam.change if np.isfinite(fam.change).any() else None
    if colouring == "stability":
        if not data.stability:
            return None
        return np.array([data.stability.get((int(l), int(h)), (np.nan, 0))[0] for l, h in zip(fam.layer, fam.head)])
    return None


def _fmt_pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def panel(data: FamilyData, role: str, index: int) -> Text:
    """The side panel's text for one head: every value from the store printed literally (never markup)."""
    fam = data.roles[role]
    layer, head = int(fam.layer[index]), int(fam.head[index])
    out = Text()
    out.append(f"layer {layer + 1} · head {head + 1}", style="bold")
    out.append(f" ({role})\n")
    out.append(f"family {int(fam.family[index]) + 1} of {fam.n_families}\n", style=f"color({family_colour(int(fam.family[index]))})")
    change = fam.change[index]
    out.append(f"fine-tuning change (JS): {'-' if change != change else f'{change:.3f}'}\n")
    stab = data.stability.get((layer, head))
    if stab is None:
        out.append("across seeds (JS): no other seed\n")
    else:
        out.append(f"across seeds (JS): {stab[0]:.3f} ({stab[1]} other)\n")
    shares = data.shares.get((role, layer, head))
    if shares:
        top = sorted(((shares.get(c, 0.0), c) for c in PATTERN_CLASSES), reverse=True)
        out.append(f"classes ({data.share_source}): ")
        out.append(", ".join(f"{c} {_fmt_pct(v)}" for v, c in top if v > 0) + "\n")
    else:
        out.append("classes: not analysed\n")
    row = data.ablation.get((layer, head))
    if row is None:
        out.append("disabled: no sweep stored\n")
    else:
        ci = "" if row.get("ci_low") is None else f" [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]"
        out.append(f"disabled: Δ {data.metric} {100 * row['delta']:+.1f}{ci}\n")
    return out


def family_colour(family: int) -> int:
    return FAMILY_COLOURS[family % len(FAMILY_COLOURS)]


__all__ = ["FamilyData", "RoleFamilies", "cells", "nearest", "panel", "values_of", "family_colour", "COLOURINGS"]
