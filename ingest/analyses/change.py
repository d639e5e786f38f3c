"""Change under fine-tuning (paper 4.3, Fig. 5): cosine of each head's maps before and after -> ``head_change``.

Per head and input: the cosine similarity of the pretrained and the
fine-tuned model's L x L maps, flattened. The maps are cropped to the input's
real tokens (the zero padding of the buckets adds nothing to the dot product
or the norms, so the padded arrays give the cropped maps' cosine); the
original code compared padded 200 x 200 maps, which inflates the similarity.
A head's value is the mean and standard deviation over inputs.
"""

from __future__ import annotations

import numpy as np


def cosine(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """[n, layer, head]: cosine of the maps ``before[n, layer, head, q, k]`` and ``after``."""
    dot = np.einsum("nlhqk,nlhqk->nlh", before, after, optimize=True)
    norms = np.sqrt(np.einsum("nlhqk,nlhqk->nlh", before, before, optimize=True)
                    * np.einsum("nlhqk,nlhqk->nlh", after, after, optimize=True))
    return dot / np.maximum(norms, np.finfo(np.float32).tiny)
