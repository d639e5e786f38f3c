"""Real maps on both sides of each pattern-class threshold, so a reader can judge where the rules draw the line.

For each boundary of the rule labeller (bertsecrets.core.patterns) one PNG,
``boundary_<name>.png``: the fine-tuned model's maps of the task's analysed
run that stand just inside the class (top row) and just outside it (bottom
row): the nearest to the threshold, then the nearest to 0.02 and 0.05 from
it (STEPS), each from a different head and none further than WINDOW. Only maps
whose other masses keep clear of their own thresholds (by CLEAR) are shown, so
a pair differs by the one mass the boundary is about. Titles give the layer
and head (1-indexed), the input and the masses; thin ticks on the axes mark
the [SEP]s, where a block's sentences end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bertsecrets.core import patterns as P
from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import get_task
from bertsecrets.store import Store
from bertsecrets.store.queries import rule_masses, segment_ends, task_run

#: On each side of a threshold, the maps nearest these distances from it: just across, then a little further.
STEPS = (0.0, 0.02, 0.05)
#: Maps further than this from the threshold are never shown: they would not say where it lies.
WINDOW = 0.1
#: How far the other masses must stay from their thresholds for a map to be shown.
CLEAR = 0.05
ROLE = "finetuned"

Masses = dict[str, np.ndarray]


@dataclass(frozen=True)
class Boundary:
    name: str  # file name part
    title: str
    mass: Callable[[Masses], np.ndarray]  # the mass the boundary is drawn on
    symbol: str  # how titles name that mass
    threshold: float
    inside: str  # the class at or above the threshold
    outside: tuple[str, ...]  # the classes just below it
    clear: Callable[[Masses], np.ndarray]  # the maps whose other masses keep clear of their thresholds


def _far_below(x: np.ndarray, t: float) -> np.ndarray:
    return x < t - CLEAR


def _no_block(m: Masses) -> np.ndarray:
    """Far from the block region: one sentence, or B or S clearly below its threshold."""
    return ~m["two"] | _far_below(m["B"], P.BLOCK_MIN) | _far_below(m["S"], P.SPREAD_MIN)


def _quiet_vd(m: Masses) -> np.ndarray:
    """Far from vertical, diagonal and vertical+diagonal."""
    return (_far_below(m["V"], P.VERTICAL_MIN) & _far_below(m["D"], P.DIAGONAL_MIN)
            & (_far_below(m["V"], P.BOTH_MIN) | _far_below(m["D"], P.BOTH_MIN)))


BOUNDARIES = (
    Boundary("vertical", "vertical or heterogeneous: V, the attention to [CLS] and [SEP]",
             lambda m: m["V"], "V", P.VERTICAL_MIN, "vertical", ("heterogeneous",),
             lambda m: _far_below(m["D"], P.BOTH_MIN) & _no_block(m)),
    Boundary("diagonal", "diagonal or heterogeneous: D, the attention to the tokens 1-2 positions away",
             lambda m: m["D"], "D", P.DIAGONAL_MIN, "diagonal", ("heterogeneous",),
             lambda m: _far_below(m["V"], P.BOTH_MIN) & _no_block(m)),
    Boundary("vertical_diagonal", "vertical+diagonal or not: the smaller of V and D",
             lambda m: np.minimum(m["V"], m["D"]), "min(V, D)", P.BOTH_MIN, "vertical+diagonal",
             ("vertical", "diagonal", "heterogeneous", "block"),
             lambda m: np.maximum(m["V"], m["D"]) >= P.BOTH_MIN + CLEAR),
    Boundary("block_share", "block or heterogeneous: B, the share of attention kept inside the own sentence",
             lambda m: m["B"], "B", P.BLOCK_MIN, "block", ("heterogeneous",),
             lambda m: m["two"] & (m["S"] >= P.SPREAD_MIN + CLEAR) & _quiet_vd(m)),
    Boundary("block_spread", "block or heterogeneous: S, how far that attention reaches (1 = evenly over the sentence)",
             lambda m: m["S"], "S", P.SPREAD_MIN, "block", ("heterogeneous",),
             lambda m: m["two"] & (m["B"] >= P.BLOCK_MIN + CLEAR) & _quiet_vd(m)),
)


def masses(store: Store, run_id: str) -> tuple[dict[str, np.ndarray], Masses]:
    """Where each map is (example, layer, head, label) and its masses V, D, B, S, two (NaN B and S for one sentence)."""
    table = rule_masses(store, run_id, ROLE)
    if table.num_rows == 0:
        raise UserError(f"run {run_id} has no rule labels: run `bertsecrets analyze {run_id}`")
    col = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    v, d = (np.asarray(col[c], dtype=float) for c in ("vertical_mass", "diagonal_mass"))
    if np.isnan(v).any():
        raise UserError(f"the rule labels of run {run_id} were made by an older bertsecrets without their masses: "
                        f"run `bertsecrets analyze {run_id}`")
    b, s = (np.asarray(col[c], dtype=float) for c in ("block_share", "block_spread"))
    where = {k: np.asarray(col[k]) for k in ("example", "layer", "head", "label")}
    return where, {"V": v, "D": d, "B": b, "S": s, "two": np.isfinite(b)}


def pick(boundary: Boundary, where: dict[str, np.ndarray], m: Masses, steps: tuple[float, ...] = STEPS
         ) -> tuple[list[int], list[int]]:
    """Rows inside and outside ``boundary``: on each side, the map nearest the threshold moved by each of ``steps``
    into that side, each from another head, none further than WINDOW (fewer when a side runs out)."""
    with np.errstate(invalid="ignore"):
        x = boundary.mass(m)
        clear = boundary.clear(m) & np.isfinite(x) & (np.abs(x - boundary.threshold) <= WINDOW)
        sides = ((clear & (x >= boundary.threshold) & (where["label"] == boundary.inside), +1),
                 (clear & (x < boundary.threshold) & np.isin(where["label"], boundary.outside), -1))
    out = []
    for side, sign in sides:
        rows = np.flatnonzero(side)
        chosen: list[int] = []
        heads: set[tuple[int, int]] = set()
        for step in steps:
            target = boundary.threshold + sign * step
            order = rows[np.lexsort((where["head"][rows], where["layer"][rows], where["example"][rows],
                                     np.abs(x[rows] - target)))]
            for r in order:
                head = (int(where["layer"][r]), int(where["head"][r]))
                if head not in heads:
                    heads.add(head)
                    chosen.append(int(r))
                    break
        out.append(chosen)
    return out[0], out[1]


def _cut(x: float) -> str:
    """Three decimals cut, not rounded: 0.4999 shows as 0.499, never as the threshold it stays below."""
    return f"{math.floor(x * 1000) / 1000:.3f}"


def _caption(m: Masses, r: int) -> str:
    parts = [f"V {_cut(m['V'][r])}", f"D {_cut(m['D'][r])}"]
    if m["two"][r]:
        parts += [f"B {_cut(m['B'][r])}", f"S {_cut(m['S'][r])}"]
    return "  ".join(parts)


def draw(store: Store, run: dict, boundary: Boundary, where: dict[str, np.ndarray], m: Masses,
         seps: dict[int, list[int]], path: Path) -> Path | None:
    """One boundary's picture at ``path``; None when either side has no map to show."""
    import matplotlib.pyplot as plt

    inside, outside = pick(boundary, where, m)
    if not inside or not outside:
        return None
    reader = store.maps(run["run_id"], ROLE)
    x = boundary.mass(m)
    columns = max(len(inside), len(outside))
    fig, axes = plt.subplots(2, columns, figsize=(2.4 * columns, 6.0), squeeze=False)
    for row, (rows, side) in enumerate(((inside, ">="), (outside, "<"))):
        for c in range(columns):
            ax = axes[row, c]
            if c >= len(rows):
                ax.axis("off")
                continue
            r = rows[c]
            e, layer, head = int(where["example"][r]), int(where["layer"][r]), int(where["head"][r])
            ax.imshow(reader.head(e, layer, head), cmap="viridis", interpolation="nearest")
            ticks = seps.get(e, [])
            ax.set_xticks(ticks, [""] * len(ticks))
            ax.set_yticks(ticks, [""] * len(ticks))
            ax.tick_params(length=4, width=1.5, color="red")
            ax.set_title(f"{where['label'][r]}: {boundary.symbol} {_cut(x[r])}\n"
                         f"layer {layer + 1}, head {head + 1}, input {e}\n{_caption(m, r)}", fontsize=7)
        axes[row, 0].set_ylabel(f"{boundary.symbol} {side} {boundary.threshold:g}", fontsize=9)
    where_from = f"{get_task(run['task']).title} dev, {run['model_used']}, fine-tuned (run {run['run_id']})"
    fig.suptitle(f"{boundary.title}; threshold {boundary.threshold:g}\n{where_from}", fontsize=8)
    fig.tight_layout()
    return _save_small(fig, path)


def _save_small(fig, path: Path) -> Path:
    """A PNG of 256 colours: a third of the bytes of a true-colour one, small enough to keep in the repository."""
    import matplotlib.pyplot as plt
    from PIL import Image

    fig.canvas.draw()
    image = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB")
    plt.close(fig)
    image.quantize(colors=256).save(path, optimize=True)
    return path


def boundaries(store: Store, task: str, out: Path) -> list[Path]:
    """``boundary_<name>.png`` for each boundary with maps on both sides."""
    import matplotlib

    matplotlib.use("Agg")
    run = task_run(store, task, "analyses")
    where, m = masses(store, run["run_id"])
    seps: dict[int, list[int]] = {}
    for r in segment_ends(store, run["run_id"]):
        seps.setdefault(r["example"], []).append(r["last"])
    written = [draw(store, run, b, where, m, seps, out / f"boundary_{b.name}.png") for b in BOUNDARIES]
    if not any(written):
        raise UserError(f"no maps of run {run['run_id']} on both sides of any threshold")
    return [p for p in written if p is not None]


FIGURES = [("boundaries", boundaries)]
