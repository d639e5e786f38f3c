"""The analyses again on norm-weighted maps (Kobayashi et al., EMNLP 2020) -> the ``norm_*`` tables.

A head's output at query i is sum_j a_ij f(x_j); the weight a_ij alone says
nothing of how much token j moves the output when ||f(x_j)|| is small, as it
often is for [CLS], [SEP] and punctuation. Here each map becomes
a_ij ||f(x_j)|| (the norms stored beside the maps), and each row is
renormalised to sum to 1: w_ij = a_ij ||f(x_j)|| / sum_k a_ik ||f(x_k)||.
Then a row is again a distribution over the keys, the share of the head's
output (by norm) that comes from each token, and every statistic of the
weight-based analyses applies unchanged, with the same code:

- ``norm_head_stats`` (written by the driver, with its row builders): head_stats' statistics (attention to [CLS], [SEP],
  punctuation, ...) on w, plus the mean ||f(x_j)|| of all keys, of [CLS] and
  of the [SEP]s;
- ``norm_feature_attention``: Fig. 6 on w;
- ``norm_class_shares``: the rule labels (Fig. 2) on w, with the same
  thresholds; the vertical rule then asks whether half of the norm-weighted
  output comes from [CLS]/[SEP];
- ``norm_head_change``: Fig. 5's cosine between the pretrained and the
  fine-tuned w.

A map set without norms (an older ingest not backfilled yet) has no such
rows; the step records why and is redone once the norms are there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.progress import Progress

from bertsecrets.core.tasks import ROLES
from bertsecrets.ingest.analyses import change, features, patterns, stats
from bertsecrets.ingest.analyses.buckets import Bucket
from bertsecrets.ingest.analyses.tokens import FEATURES, Annotations
from bertsecrets.store import Store, StoreError
from bertsecrets.store.maps import MapReader, renormalise

#: Per-head means of ||f(x_j)||, beside the statistics of the weighted maps.
FNORMS = ("fnorm_mean", "fnorm_cls", "fnorm_sep")
#: Inputs computed at once within a bucket (the maps, their norms and the weighted copies of both models).
CHUNK = 16


def weighted(attn: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """attn[..., query, key] * norms[..., key], rows renormalised to sum to 1 (padding rows stay 0)."""
    return renormalise(attn * norms[..., None, :])


def fnorm_stats(b: Bucket, norms: np.ndarray) -> dict[str, np.ndarray]:
    """Mean ||f(x_j)|| per map [n, layer, head]: over all real keys, of [CLS], over the [SEP]s."""
    sep = b.ann.sep.astype(np.float32)
    return {
        "fnorm_mean": norms.sum(axis=-1) / b.lengths[:, None, None],
        "fnorm_cls": norms[..., 0],
        "fnorm_sep": np.einsum("nlhk,nk->nlh", norms, sep) / np.maximum(sep.sum(axis=-1), 1)[:, None, None],
    }


@dataclass
class NormPass:
    """Per-input results on the norm-weighted maps of both roles: arrays indexed [role, example, ...]."""

    stats: dict[str, np.ndarray]  # name -> [role, example, layer, head]
    features: np.ndarray  # [role, example, layer, head, feature]
    cls: np.ndarray  # [role, example, layer, feature] (not stored; the driver's row builder asks for it)
    geometry: np.ndarray  # [role, example, layer, head, feature]
    cosine: np.ndarray  # [example, layer, head]


def readers_with_norms(store: Store, run_id: str) -> tuple[list[MapReader] | None, str | None]:
    """Both roles' map readers, or None and why not (a map set without norms)."""
    readers = [store.maps(run_id, role) for role in ROLES]
    lacking = [role for role, r in zip(ROLES, readers) if not r.has_norms]
    if lacking:
        task = readers[0].attrs.get("task", "TASK")
        return None, (f"no norms in the {' and '.join(lacking)} maps: run `bertsecrets ingest {task}` "
                      "to add them (the backfill)")
    return readers, None


def bulk_pass(readers: list[MapReader], ann: Annotations, progress: Progress | None = None) -> NormPass:
    """Read every bucket of maps and norms of both roles once; all statistics on the weighted maps."""
    n, n_layers, n_heads = len(readers[0]), readers[0].n_layers, readers[0].n_heads
    if len(readers[1]) != n or not np.array_equal(readers[0].lengths, readers[1].lengths):
        raise StoreError("the pretrained and fine-tuned maps do not cover the same inputs; re-run the ingest")
    shape = (len(ROLES), n, n_layers, n_heads)
    out = NormPass(stats={name: np.zeros(shape) for name in (*stats.STATS, *FNORMS)},
                   features=np.zeros(shape + (len(FEATURES),)), cls=np.zeros(shape[:3] + (len(FEATURES),)),
                   geometry=np.zeros(shape + (len(patterns.GEOMETRY),), dtype=np.float32),
                   cosine=np.zeros(shape[1:]))
    bar = progress.add_task("analyses (norm-weighted)", total=n, info="both models") if progress else None
    buckets = zip(readers[0].iter_buckets(), readers[0].iter_norm_buckets(),
                  readers[1].iter_buckets(), readers[1].iter_norm_buckets())
    for (examples, attn_before), (_, norm_before), (same, attn_after), (_, norm_after) in buckets:
        assert np.array_equal(examples, same)
        for start in range(0, len(examples), CHUNK):
            part = slice(start, start + CHUNK)
            sub = ann.take(examples[part], attn_before.shape[-1])
            pair = []
            for r, (attn, norm) in enumerate(((attn_before[part], norm_before[part]), (attn_after[part], norm_after[part]))):
                b = Bucket(examples[part], weighted(attn, norm), sub)
                rows = examples[part]
                for name, values in {**stats.per_map(b), **fnorm_stats(b, norm)}.items():
                    out.stats[name][r, rows] = values
                out.features[r, rows] = features.per_input(b)
                out.cls[r, rows] = features.cls_per_input(b)
                out.geometry[r, rows] = patterns.geometry(b)
                pair.append(b.attn)
            out.cosine[examples[part]] = change.cosine(*pair)
            if progress:
                progress.update(bar, advance=len(examples[part]))
    return out

