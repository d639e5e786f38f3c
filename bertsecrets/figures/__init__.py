"""Figures of the paper from the store: PNG files and the tables behind them as CSV.

Each module listed in ``MODULES`` provides ``FIGURES``: a list of
``(name, function)`` where ``function(store, task, out_dir) -> list[Path]``
writes its files for one task (a GLUE task name, e.g. "mrpc") and returns them;
a module may also provide ``ACROSS_FIGURES``: ``(name, function, caption)`` with
``function(store, out_dir, tasks) -> list[Path]``, one panel per task, drawn
after ``bertsecrets.figures.tasks.FIGURES`` (``across_figures``).
Figures read the catalog and the maps through ``store``; they never import torch.
Layers and heads are shown 1-indexed, as in the paper.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

#: Figure modules, in the order they are drawn.
MODULES: list[str] = ["bertsecrets.figures.paper", "bertsecrets.figures.ablation", "bertsecrets.figures.boundaries",
                      "bertsecrets.figures.beyond"]

Figure = Callable[..., list[Path]]


def all_figures() -> list[tuple[str, Figure]]:
    out: list[tuple[str, Figure]] = []
    for name in MODULES:
        out.extend(importlib.import_module(name).FIGURES)
    return out


def across_figures() -> list[tuple[str, Callable[..., list[Path]], str]]:
    """The cross-task figures: ``bertsecrets.figures.tasks``'s, then each module's ``ACROSS_FIGURES``."""
    out = list(importlib.import_module("bertsecrets.figures.tasks").FIGURES)
    for name in MODULES:
        out.extend(getattr(importlib.import_module(name), "ACROSS_FIGURES", []))
    return out
