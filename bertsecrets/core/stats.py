"""Small statistics more than one room reports: rank correlation, written as people read it."""

from __future__ import annotations

import numpy as np


def spearman(x, y) -> float | None:
    """Spearman's rank correlation; None when either side is constant (no ranking to compare)."""
    from scipy.stats import spearmanr

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y)[0])


def rho_text(value: float | None) -> str:
    return "undefined (constant)" if value is None else f"{value:+.2f}"
