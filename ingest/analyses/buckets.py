"""One length bucket of maps with its annotations, and the quantities several analyses share.

Every statistic is computed for all maps of a bucket at once: numpy over
``attn[example, layer, head, query, key]`` (zero past each input's length L),
never a Python loop over maps. Zero padding adds nothing to sums, so only the
averages over queries need each input's L (``query_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bertsecrets.ingest.analyses.tokens import Annotations


@dataclass
class Bucket:
    """The maps of the inputs ``examples`` (rows of ``attn``), padded to one width B."""

    examples: np.ndarray  # [n] dev example indices
    attn: np.ndarray  # [n, layer, head, B, B] float32, zero past L
    ann: Annotations  # of these examples, padded to B

    @property
    def width(self) -> int:
        return self.attn.shape[-1]

    @property
    def lengths(self) -> np.ndarray:
        return self.ann.lengths

    @cached_property
    def valid(self) -> np.ndarray:
        """[n, B] bool: positions inside the input."""
        return np.arange(self.width)[None, :] < self.lengths[:, None]

    @cached_property
    def query_weights(self) -> np.ndarray:
        """[n, B]: 1/L for each real query, 0 past L (a mean over queries as a weighted sum)."""
        return self.valid / self.lengths[:, None].astype(np.float32)

    @cached_property
    def received(self) -> np.ndarray:
        """[n, layer, head, key]: the attention a key receives, summed over queries, divided by L.

        Also the mean attention a query gives that key; the paper's statistic of Fig. 6."""
        w = self.query_weights.astype(np.float32)[:, None, None, None, :]
        return np.matmul(w, self.attn)[..., 0, :]

    @cached_property
    def row_entropy(self) -> np.ndarray:
        """[n, layer, head, query]: -sum_k p log p of each query's attention (0 for padding rows)."""
        # p * log(max(p, tiny)) is p log p with 0 log 0 = 0, four times faster than scipy's xlogy.
        logs = np.log(np.maximum(self.attn, np.finfo(np.float32).tiny))
        logs *= self.attn
        return -logs.sum(axis=-1)

    def diagonal_mean(self, offset: int) -> np.ndarray:
        """[n, layer, head]: mean over queries q of attn[q, q + offset], over the queries where q + offset is inside."""
        diag = np.diagonal(self.attn, offset=offset, axis1=-2, axis2=-1)  # [n, layer, head, B - |offset|]
        count = (self.lengths - abs(offset)).clip(min=1).astype(np.float32)
        return diag.sum(axis=-1) / count[:, None, None]

    def other(self, attn: np.ndarray) -> "Bucket":
        """The same inputs with another model's maps (the other role)."""
        return Bucket(self.examples, attn, self.ann)
