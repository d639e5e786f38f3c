"""The GLUE metrics of the paper: accuracy and F1, Pearson and Spearman."""

from __future__ import annotations

import math

import numpy as np

from bertsecrets.core.tasks import Task


def predictions(task: Task, logits: np.ndarray) -> np.ndarray:
    """Class ids (argmax) or scores (the single regression output)."""
    logits = np.asarray(logits)
    if task.label_kind == "regression":
        return logits.reshape(len(logits), -1)[:, 0].astype(np.float64)
    return logits.argmax(axis=-1).astype(np.float64)


def compute(task: Task, preds: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """The task's metrics as fractions (None where undefined, e.g. Pearson of a constant)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score

    preds, labels = np.asarray(preds), np.asarray(labels)
    out: dict[str, float | None] = {}
    for name in task.metrics:
        if name == "accuracy":
            value = accuracy_score(labels, preds)
        elif name == "f1":
            value = f1_score(labels.astype(int), preds.astype(int), pos_label=1, zero_division=0.0)
        elif name in ("pearson", "spearman"):
            if np.ptp(preds) == 0 or np.ptp(labels) == 0:
                value = float("nan")
            else:
                value = (pearsonr if name == "pearson" else spearmanr)(preds, labels)[0]
        else:  # pragma: no cover - the registry names only the metrics above
            raise ValueError(name)
        value = float(value)
        out[name] = None if math.isnan(value) else value
    return out


def correct(task: Task, preds: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Per-example correctness (classification only)."""
    if task.label_kind == "regression":
        return None
    return np.asarray(preds) == np.asarray(labels)
