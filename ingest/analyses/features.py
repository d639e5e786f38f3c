"""Attention to linguistic features (paper 4.4, Fig. 6) and where [CLS] attends (4.5, Fig. 7).

Fig. 6, per head and input, exactly as the paper states it: for each token
of a type, the attention all tokens give it (its column sum) divided by L;
the maximum over the input's tokens of that type; inputs without the type
are skipped; the mean over the remaining inputs -> ``feature_attention``.
A token here is a word (spaCy's), receiving the attention of all its pieces;
[CLS] and each [SEP] are tokens of their own (see ingest.analyses.tokens).

Fig. 7, per layer and input: the share of the [CLS] query's attention that
lands on pieces of each type (all pieces of the type together), averaged
over the layer's heads, then over the inputs that have the type ->
``cls_attention``. A piece can have several types (a noun that is a
subject), so the shares of one layer can add up to more than 1.
"""

from __future__ import annotations

import numpy as np

from bertsecrets.ingest.analyses.buckets import Bucket
from bertsecrets.ingest.analyses.tokens import FEATURES


def per_input(b: Bucket) -> np.ndarray:
    """[n, layer, head, feature]: the Fig. 6 value of each input, NaN where the input lacks the type."""
    words = b.ann.words.astype(np.float32)  # [n, word, position]
    per_word = np.einsum("nlhk,nwk->nlhw", b.received, words, optimize=True)
    has = b.ann.word_features  # [n, word, feature]
    out = np.full(per_word.shape[:3] + (len(FEATURES),), np.nan, dtype=np.float64)
    for f in range(len(FEATURES)):
        mask = has[:, None, None, :, f]
        best = np.where(mask, per_word, -np.inf).max(axis=-1, initial=-np.inf)
        out[..., f] = np.where(np.isfinite(best), best, np.nan)
    return out


def cls_per_input(b: Bucket) -> np.ndarray:
    """[n, layer, feature]: the share of [CLS]'s attention on each type, mean over heads; NaN where absent."""
    pieces = b.ann.piece_features().astype(np.float32)  # [n, feature, position]
    share = np.einsum("nlhk,nfk->nlf", b.attn[..., 0, :], pieces, optimize=True) / b.attn.shape[2]
    present = pieces.any(axis=-1)  # [n, feature]
    return np.where(present[:, None, :], share, np.nan)
