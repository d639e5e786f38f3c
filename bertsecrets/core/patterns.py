"""The pattern rules' thresholds: what the rule labeller applies (ingest) and what the boundary figures show (figures).

Each class is decided from four masses of a map (ingest/analyses/patterns.py
computes them; the catalog keeps them in ``map_classes``):

- V, vertical mass: attention to the [CLS] and [SEP] columns;
- D, diagonal mass: attention to the keys at most DIAGONAL_WINDOW positions
  before or after the query (the query itself excluded);
- B, block share (two-sentence inputs): of the attention not given to [CLS]
  or [SEP], the share that stays inside the query's own sentence;
- S, block spread: how far that in-sentence attention reaches, as a ratio to
  the reach of attention spread evenly over the query's sentence (1 for an
  even block, about 3w / 2n for a band of half-width w in a sentence of n
  pieces), so a broad band along the diagonal is not a block.

The rules, in order: vertical+diagonal if V >= BOTH_MIN and D >= BOTH_MIN;
vertical if V >= VERTICAL_MIN; diagonal if D >= DIAGONAL_MIN; block if the
input has two sentences, B >= BLOCK_MIN and S >= SPREAD_MIN; else
heterogeneous. docs/analyses.md shows real maps on both sides of each
threshold.
"""

from __future__ import annotations

VERTICAL_MIN = 0.5
DIAGONAL_MIN = 0.4
BOTH_MIN = 0.3
BLOCK_MIN = 0.8
SPREAD_MIN = 0.6
#: Keys at most this far from the query count as the diagonal (excluding the query itself).
DIAGONAL_WINDOW = 2

#: Everything the rules read, by name: part of the analyses' cache keys.
THRESHOLDS = {"VERTICAL_MIN": VERTICAL_MIN, "DIAGONAL_MIN": DIAGONAL_MIN, "BOTH_MIN": BOTH_MIN,
              "BLOCK_MIN": BLOCK_MIN, "SPREAD_MIN": SPREAD_MIN, "DIAGONAL_WINDOW": DIAGONAL_WINDOW}
