"""The sentence view's logic: word pieces joined into words, the attention a token gives or gets, coloured lines.

No Textual here: the screen (screens/sentence.py) and its widget only call these
functions, which the tests check on hand-made arrays.

Joining word pieces into words follows Clark et al. (2019, "What does BERT look
at?"): attention *to* a word is the sum of the attention to its pieces, and
attention *from* a word is the mean of its pieces' attention, so every row still
sums to 1. Pieces form a word when they share the catalog's ``segment`` and
``word`` (the tokenizer's words, aligned by character offsets); [CLS] and [SEP]
(``word`` NULL) stay on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style

from bertsecrets.tui.palette import Palette

#: What the selected token's values are: the attention it gives (its row) or gets (its column).
DIRECTIONS = ("from", "to")
#: Marks the selected token besides its colour: bold and underlined.
SELECTED = Style(bold=True, underline=True)


@dataclass(frozen=True)
class Piece:
    """One word piece of an input, as the catalog's ``tokens`` table has it."""

    token: str
    segment: int = 0
    word: int | None = None
    char_start: int | None = None
    char_end: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Piece":
        return cls(str(row["token"]), int(row.get("segment") or 0), row.get("word"), row.get("char_start"),
                   row.get("char_end"))


@dataclass(frozen=True)
class Unit:
    """What the view shows as one coloured box: a word piece, or a word joined from its pieces."""

    text: str
    pieces: tuple[int, ...]  # positions in the maps (rows and columns)
    segment: int


def units(pieces: Sequence[Piece], texts: Sequence[str | None] = (), join: bool = False) -> list[Unit]:
    """The boxes of one input: one per piece, or (``join``) one per word.

    A word (``join``) shows its span of the input's text (``texts[segment]``, by
    the pieces' character offsets), so it reads as written; without offsets, its
    pieces with "##" removed.
    """
    out: list[Unit] = []
    i = 0
    while i < len(pieces):
        j = i + 1
        p = pieces[i]
        if join and p.word is not None:
            while j < len(pieces) and pieces[j].word == p.word and pieces[j].segment == p.segment:
                j += 1
        group = pieces[i:j]
        if not join or p.word is None:
            text = p.token
        else:
            text = _span(group, texts) or "".join(q.token[2:] if q.token.startswith("##") else q.token for q in group)
        out.append(Unit(text, tuple(range(i, j)), p.segment))
        i = j
    return out


def _span(group: Sequence[Piece], texts: Sequence[str | None]) -> str | None:
    starts = [q.char_start for q in group]
    ends = [q.char_end for q in group]
    segment = group[0].segment
    if None in starts or None in ends or segment >= len(texts) or texts[segment] is None:
        return None
    return texts[segment][min(starts): max(ends)] or None


def unit_of(units_: Sequence[Unit], position: int) -> int:
    """The box that shows the piece at ``position`` (the last box if beyond)."""
    for u, unit in enumerate(units_):
        if position in unit.pieces:
            return u
    return max(len(units_) - 1, 0)


def joined(attn: np.ndarray, units_: Sequence[Unit]) -> np.ndarray:
    """``attn[..., L, L]`` over boxes: rows averaged over a box's pieces (from), columns summed (to)."""
    n = attn.shape[-1]
    member = np.zeros((len(units_), n))
    for u, unit in enumerate(units_):
        member[u, list(unit.pieces)] = 1.0
    rows = member / member.sum(axis=1, keepdims=True)
    return rows @ np.asarray(attn, dtype=np.float64) @ member.T


def head_or_mean(maps: np.ndarray, layer: int, head: int | None) -> np.ndarray:
    """``maps[layer, head]`` of ``maps[layer, head, L, L]``, or (``head`` None) the mean over the layer's heads."""
    return np.asarray(maps[layer], dtype=np.float64).mean(axis=0) if head is None else np.asarray(maps[layer, head])


def rolled_out(maps: np.ndarray) -> np.ndarray:
    """``maps[layer, head, L, L]`` rolled out through every layer (Abnar and Zuidema 2020): row q says how much of
    token q's last-layer representation comes from each input token (bertsecrets.core.flow.rollout)."""
    from bertsecrets.core.flow import rollout

    return rollout(maps)[-1]


def vector(matrix: np.ndarray, index: int, direction: str) -> np.ndarray:
    """What box ``index`` attends to (``from``: its row) or what attends to it (``to``: its column)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    return np.asarray(matrix[index] if direction == "from" else matrix[:, index])


def label(text: str, value: float | None) -> str:
    """A box's text, with its value after it when values are printed ("bank .61")."""
    if value is None:
        return text
    if value != value:
        return f"{text} -"
    number = f"{value:.2f}"
    return f"{text} {number[1:] if number.startswith('0.') else number}"


# -- wrapping ---------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """A piece of a line: ``text`` of box ``unit`` (-1: the space between boxes) from column ``x``."""

    unit: int
    x: int
    text: str


def wrap(labels: Sequence[str], width: int, breaks: Sequence[int] = ()) -> list[list[Placed]]:
    """Boxes laid out in lines of at most ``width`` cells, one space apart, never split unless longer than a line.

    A line also starts at every box in ``breaks`` (the second sentence of a pair).
    """
    width = max(width, 1)
    lines: list[list[Placed]] = [[]]
    x = 0
    starts = set(breaks)
    for u, text in enumerate(labels):
        size = cell_len(text)
        if lines[-1] and (u in starts or x + 1 + size > width):
            lines.append([])
            x = 0
        if size > width:  # longer than a line: cut, on lines of its own
            for chunk in chop_cells(text, width):
                if lines[-1]:
                    lines.append([])
                lines[-1].append(Placed(u, 0, chunk))
                x = cell_len(chunk)
            continue
        if lines[-1]:
            lines[-1].append(Placed(-1, x, " "))
            x += 1
        lines[-1].append(Placed(u, x, text))
        x += size
    return lines


def line_of(lines: Sequence[Sequence[Placed]], unit: int) -> int:
    """The line on which box ``unit`` starts."""
    for y, line in enumerate(lines):
        if any(p.unit == unit for p in line):
            return y
    return 0


def neighbour(lines: Sequence[Sequence[Placed]], unit: int, step: int) -> int:
    """The box ``step`` lines above (negative) or below ``unit`` nearest its column; ``unit`` at the edge."""
    y = line_of(lines, unit)
    here = next((p for p in lines[y] if p.unit == unit), None) if lines else None
    target = y + step
    if here is None or not 0 <= target < len(lines):
        return unit
    boxes = [p for p in lines[target] if p.unit >= 0]
    if not boxes:
        return unit
    middle = here.x + cell_len(here.text) / 2
    return min(boxes, key=lambda p: (abs(p.x + cell_len(p.text) / 2 - middle), p.x)).unit


# -- colouring ----------------------------------------------------------------------


@dataclass
class Pane:
    """One model's line of text: its title, one value per box, the top of its colour scale; or a message."""

    title: str
    values: np.ndarray | None = None
    high: float = 1.0
    message: str = ""


@dataclass
class Drawn:
    """What ``render`` made: the lines, the line of the selected box in each pane, the first pane's layout."""

    lines: list[list[Segment]]
    cursor_lines: list[int]
    layout: list[list[Placed]]
    #: Per line of ``lines``, the boxes on it (none on titles, blank lines and messages).
    placed: list[list[Placed]]


def breaks_of(units_: Sequence[Unit]) -> list[int]:
    """The boxes that start a line: the first of each sentence after the first."""
    return [u for u in range(1, len(units_)) if units_[u].segment != units_[u - 1].segment]


def render(units_: Sequence[Unit], panes: Sequence[Pane], cursor: int, width: int, palette: Palette, *,
           values: bool = False, base: Style | None = None, title: Style | None = None) -> Drawn:
    """The view as lines of styled segments, panes one above the other with a blank line between.

    Each box's background is its value's palette level (0 to ``pane.high``),
    with black or white text, whichever reads; the selected box is drawn in the
    palette's cursor colour, bold and underlined.
    """
    base = base or Style()
    title = title or base + Style(bold=True)
    breaks = breaks_of(units_)
    out: list[list[Segment]] = []
    placed: list[list[Placed]] = []
    cursor_lines: list[int] = []
    first_layout: list[list[Placed]] | None = None
    for i, pane in enumerate(panes):
        if i:
            out.append([])
        out.append([Segment(pane.title, title)])
        if pane.values is None:
            cursor_lines.append(len(out) - 1)
            out.extend([Segment(line, base)] for line in chop_lines(pane.message, width))
            placed.extend([] for _ in range(len(out) - len(placed)))
            continue
        shown = [float(v) for v in pane.values]
        texts = [label(unit.text, shown[u] if values else None) for u, unit in enumerate(units_)]
        levels = palette.levels(np.asarray(shown), 0.0, pane.high).tolist()
        lines = wrap(texts, width, breaks)
        first_layout = lines if first_layout is None else first_layout
        cursor_lines.append(len(out) + line_of(lines, cursor))
        placed.extend([] for _ in range(len(out) - len(placed)))
        placed.extend(lines)
        for line in lines:
            segments = []
            for box in line:
                if box.unit < 0:
                    segments.append(Segment(box.text, base))
                elif box.unit == cursor:
                    segments.append(Segment(box.text, palette.cell(palette.n) + SELECTED))
                else:
                    level = levels[box.unit]
                    segments.append(Segment(box.text, palette.cell(level) if level >= 0 else base))
            out.append(segments)
    if first_layout is None:
        first_layout = wrap([unit.text for unit in units_], width, breaks)
    return Drawn(out, cursor_lines, first_layout, placed)


def chop_lines(text: str, width: int) -> list[str]:
    """``text`` cut into lines of ``width`` cells at spaces where it can be."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and cell_len(line) + 1 + cell_len(word) > width:
            lines.append(line)
            line = ""
        while cell_len(word) > width:
            head, *rest = chop_cells(word, width)
            lines.append(head)
            word = "".join(rest)
        line = f"{line} {word}" if line else word
    return lines + [line] if line else lines or [""]
