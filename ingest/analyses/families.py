"""Head families, head stability and attention rollout of a run, from its stored maps -> the ``head_*`` and ``cls_rollout*`` tables.

One pass over the run's pretrained and fine-tuned maps (and the fine-tuned
maps of the runs that differ from it only in their seed) computes, per input:

- the Jensen-Shannon distance between every pair of heads of each model
  (bertsecrets.core.flow: base 2, square root per query row, mean over rows),
  averaged over inputs -> ``head_distances``; from it the families (average-
  linkage agglomerative clustering on the distances, the number of clusters
  with the best silhouette in MIN_FAMILIES..MAX_FAMILIES) and a 2-D MDS embedding ->
  ``head_families``;
- each head's distance to itself after fine-tuning (pretrained vs fine-tuned
  map of the same input) -> ``head_families.change``, and to itself in the
  fine-tuned model of every other seed with maps -> ``head_stability``, one
  part per pair of runs (see ``stability_part``);
- each head's profile, the share of a query's attention on disjoint kinds of
  key (PROFILE_TARGETS), mean over queries and inputs -> ``head_profiles``:
  inputs of different tasks differ, so heads are compared across tasks by
  their profiles (the report's JS distance between two tasks' profiles);
- the attention rollout of every input and where the last layer's [CLS] row
  goes, beside the raw maps' mean-over-heads [CLS] row -> ``cls_rollout`` (per
  layer and token type, like ``cls_attention``) and ``cls_rollout_tokens``
  (the last layer's row per input and position).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from rich.progress import Progress

from bertsecrets.core import flow
from bertsecrets.core.settings import columns, stored_weights
from bertsecrets.core.tasks import ROLES
from bertsecrets.ingest.analyses.tokens import FEATURES, Annotations
from bertsecrets.store import Store, StoreError, queries

#: Bumped when a change of this module changes its rows.
VERSION = 1
#: Disjoint kinds of key a query attends to, first match wins: [CLS], a [SEP], itself, the previous
#: token, the next token, another token of its own sentence, a token of the other sentence.
PROFILE_TARGETS = ("cls", "sep", "self", "previous", "next", "same sentence", "other sentence")
#: Token types of the rollout's [CLS] shares: the paper's (Fig. 7) and punctuation.
ROLLOUT_FEATURES = (*FEATURES, "punct")
#: The numbers of families tried; the one with the best silhouette is kept. Not 2 or 3: average linkage then
#: splits off one or two outlying heads (on MiniLM's MRPC maps 71 + 1 heads has the best silhouette of all, 0.30),
#: which says nothing about families.
MIN_FAMILIES, MAX_FAMILIES = 4, 10
MDS_SEED = 0
#: Inputs whose rollout is computed at once.
CHUNK = 16


def settings() -> dict[str, Any]:
    return {"version": VERSION, "targets": PROFILE_TARGETS, "families": [MIN_FAMILIES, MAX_FAMILIES],
            "mds_seed": MDS_SEED, "linkage": "average"}


# -- which runs are the same but for the seed ---------------------------------------------------


def _norm(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def seed_siblings(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The other fine-tuned runs with finished maps that differ from ``run_id`` only in their seed, by seed."""
    record = store.run(run_id)
    same = [name for name, _ in columns() if name != "seed"]
    out = []
    for other in queries.finetuned_runs_with_maps(store, record["task"]):
        if other["run_id"] == run_id or other["seed"] == record["seed"]:
            continue
        if stored_weights(other) == stored_weights(record) and all(
                _norm(other.get(k)) == _norm(record.get(k)) for k in ("model_used", "data_fingerprint", "device", "dtype", *same)):
            out.append(other)
    return out


# -- the pass --------------------------------------------------------------------------------


@dataclass
class FlowPass:
    n: int
    n_layers: int
    n_heads: int
    distances: np.ndarray  # [role, head, head] over layer-major heads, mean over inputs
    change: np.ndarray  # [head]: pretrained vs fine-tuned, same input
    profiles: np.ndarray  # [role, layer, head, target]
    rollout_types: np.ndarray  # [role, example, layer, feature]: share of rollout [CLS] row; NaN: type absent
    raw_types: np.ndarray  # [role, example, layer, feature]: the same of the raw mean-over-heads [CLS] row
    last_rows: list[list[tuple[np.ndarray, np.ndarray]]]  # [role][example] -> (rollout, raw) last-layer [CLS] rows
    stability: dict[str, np.ndarray] = field(default_factory=dict)  # other run -> [head]


def _categories(ann: Annotations, width: int) -> np.ndarray:
    """[n, query, key] index into PROFILE_TARGETS, -1 outside the input."""
    position = np.arange(width)
    q, k = position[:, None], position[None, :]
    valid = ann.segment >= 0  # [n, width]
    cat = np.where(ann.segment[:, :, None] == ann.segment[:, None, :], 5, 6)
    cat = np.where((k == q + 1)[None], 4, cat)
    cat = np.where((k == q - 1)[None], 3, cat)
    cat = np.where((k == q)[None], 2, cat)
    cat = np.where(ann.sep[:, None, :], 1, cat)
    cat = np.where((k == 0)[None], 0, cat)
    return np.where(valid[:, :, None] & valid[:, None, :], cat, -1)


def _profile(attn: np.ndarray, cat: np.ndarray) -> np.ndarray:
    """[head, target]: share of a query's attention on each kind of key, mean over the input's queries.

    ``attn[head, query, key]`` and ``cat[query, key]`` cropped to the input's L tokens."""
    length = attn.shape[-1]
    onehot = np.eye(len(PROFILE_TARGETS), dtype=np.float32)[cat.ravel()] / np.float32(length)
    return attn.reshape(len(attn), -1) @ onehot


def _shares(rows: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """[n, layer, feature]: the mass of each [CLS] row ``rows[n, layer, key]`` on each type's pieces; NaN: absent."""
    share = np.einsum("nlk,nfk->nlf", rows, pieces)
    present = pieces.any(axis=-1)
    return np.where(present[:, None, :], share, np.nan)


def flow_pass(store: Store, run_id: str, ann: Annotations, others: list[str] = (),
              progress: Progress | None = None) -> FlowPass:
    """Read the run's maps (and ``others``' fine-tuned maps) once and compute everything per input."""
    from threadpoolctl import threadpool_limits

    # The products here are small (72 x L^2 by 7, L x L by L): BLAS threads only wait for each other, 30x
    # slower than one thread on a busy 2-core machine.
    # numpy lets go of the GIL in the distances' sums and look-ups: the two models' on two threads.
    with threadpool_limits(1), ThreadPoolExecutor(max_workers=len(ROLES)) as pool:
        return _flow_pass(store, run_id, ann, list(others), progress, pool)


def _flow_pass(store: Store, run_id: str, ann: Annotations, others: list[str], progress: Progress | None,
               pool: ThreadPoolExecutor) -> FlowPass:
    readers = [store.maps(run_id, role) for role in ROLES]
    extra = [store.maps(o, "finetuned") for o in others]
    n, n_layers, n_heads = len(readers[0]), readers[0].n_layers, readers[0].n_heads
    for r in readers[1:] + extra:
        if len(r) != n or not np.array_equal(r.lengths, readers[0].lengths):
            raise StoreError(f"the map sets compared with run {run_id} do not cover the same inputs; re-run the ingest")
    heads = n_layers * n_heads
    exact = [r.precision == "uint8" for r in readers]
    exact_extra = [exact[1] and r.precision == "uint8" for r in extra]
    out = FlowPass(n, n_layers, n_heads, np.zeros((len(ROLES), heads, heads)), np.zeros(heads),
                   np.zeros((len(ROLES), n_layers, n_heads, len(PROFILE_TARGETS))),
                   np.full((len(ROLES), n, n_layers, len(ROLLOUT_FEATURES)), np.nan),
                   np.full((len(ROLES), n, n_layers, len(ROLLOUT_FEATURES)), np.nan),
                   [[None] * n for _ in ROLES], {o: np.zeros(heads) for o in others})
    bar = progress.add_task("head families, stability, rollout", total=n, info="both models") if progress else None
    for parts in zip(*(r.iter_buckets() for r in readers + extra)):
        examples = parts[0][0]
        assert all(np.array_equal(examples, p[0]) for p in parts)
        for start in range(0, len(examples), CHUNK):
            part = slice(start, start + CHUNK)
            chunk = examples[part]
            maps = [p[1][part] for p in parts]
            width = maps[0].shape[-1]
            sub = ann.take(chunk, width)
            pieces = np.concatenate([sub.piece_features(), sub.punct[:, None, :]], axis=1).astype(np.float64)
            categories = _categories(sub, width)
            for r in range(len(ROLES)):
                rolled = flow.rollout(maps[r], sub.lengths)[:, :, 0, :]  # [n, layer, key]
                raw = maps[r][:, :, :, 0, :].mean(axis=2, dtype=np.float64)  # [n, layer, key]
                out.rollout_types[r, chunk] = _shares(rolled, pieces)
                out.raw_types[r, chunk] = _shares(raw, pieces)
                for i, e in enumerate(chunk):
                    length = int(sub.lengths[i])
                    out.last_rows[r][e] = (rolled[i, -1, :length], raw[i, -1, :length])
            for i, e in enumerate(chunk):
                length = int(sub.lengths[i])
                cropped = [m[i, :, :, :length, :length].reshape(heads, length, length) for m in maps]
                cat = categories[i, :length, :length]
                pending = [pool.submit(flow.head_distances, cropped[r], exact[r]) for r in range(len(ROLES))]
                for r in range(len(ROLES)):
                    out.profiles[r] += _profile(cropped[r], cat).reshape(n_layers, n_heads, -1)
                out.change += flow.same_head_distances(cropped[0], cropped[1], exact[0] and exact[1])
                for o, m, x in zip(others, cropped[2:], exact_extra):
                    out.stability[o] += flow.same_head_distances(cropped[1], m, x)
                for r, done in enumerate(pending):
                    out.distances[r] += done.result()
            if progress:
                progress.update(bar, advance=len(chunk))
    out.distances /= n
    out.change /= n
    out.profiles /= n
    for o in others:
        out.stability[o] /= n
    return out


# -- families --------------------------------------------------------------------------------


@dataclass
class Families:
    labels: np.ndarray  # [head] family, 0-indexed, the largest family first
    n_families: int
    silhouette: float | None
    xy: np.ndarray  # [head, 2]


def families(distances: np.ndarray, min_families: int = MIN_FAMILIES, max_families: int = MAX_FAMILIES,
             seed: int = MDS_SEED) -> Families:
    """Average-linkage clusters of a distance matrix (the count in min..max with the best silhouette; fewer when
    there are too few heads) and a 2-D MDS embedding."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.manifold import MDS
    from sklearn.metrics import silhouette_score

    d = (distances + distances.T) / 2
    np.fill_diagonal(d, 0.0)
    n = len(d)
    best: tuple[float, np.ndarray] | None = None
    for k in range(max(2, min(min_families, n - 1)), min(max_families, n - 1) + 1):
        labels = AgglomerativeClustering(n_clusters=k, metric="precomputed", linkage="average").fit_predict(d)
        if len(np.unique(labels)) < 2:
            continue
        score = float(silhouette_score(d, labels, metric="precomputed"))
        if best is None or score > best[0] + 1e-12:
            best = (score, labels)
    if best is None:  # fewer than 3 heads, or all at distance 0: one family
        labels, score = np.zeros(n, dtype=np.int64), None
    else:
        score, labels = best
    # Families numbered by size (then by their first head), so family 1 is the largest whatever sklearn's order.
    sizes = {f: (-(labels == f).sum(), int(np.argmax(labels == f))) for f in np.unique(labels)}
    order = {f: i for i, f in enumerate(sorted(sizes, key=sizes.get))}
    labels = np.array([order[f] for f in labels])
    if n >= 2 and d.max() > 0:
        xy = MDS(n_components=2, metric="precomputed", random_state=seed, n_init=1, init="classical_mds",
                 normalized_stress="auto").fit_transform(d)
    else:
        xy = np.zeros((n, 2))
    return Families(labels, len(order), score, xy)


# -- rows ------------------------------------------------------------------------------------


def distance_rows(run_id: str, p: FlowPass) -> pa.Table:
    heads = p.n_layers * p.n_heads
    a, b = np.meshgrid(np.arange(heads), np.arange(heads), indexing="ij")
    a, b = a.ravel(), b.ravel()
    cols: dict[str, list] = {k: [] for k in ("run_id", "role", "layer", "head", "other_layer", "other_head", "distance")}
    for r, role in enumerate(ROLES):
        cols["run_id"] += [run_id] * len(a)
        cols["role"] += [role] * len(a)
        cols["layer"] += (a // p.n_heads).tolist()
        cols["head"] += (a % p.n_heads).tolist()
        cols["other_layer"] += (b // p.n_heads).tolist()
        cols["other_head"] += (b % p.n_heads).tolist()
        cols["distance"] += p.distances[r][a, b].tolist()
    return pa.table(cols)


def family_rows(run_id: str, p: FlowPass) -> list[dict]:
    rows = []
    for r, role in enumerate(ROLES):
        fam = families(p.distances[r])
        for i in range(p.n_layers * p.n_heads):
            rows.append({"run_id": run_id, "role": role, "layer": i // p.n_heads, "head": i % p.n_heads,
                         "family": int(fam.labels[i]), "n_families": fam.n_families, "silhouette": fam.silhouette,
                         "x": float(fam.xy[i, 0]), "y": float(fam.xy[i, 1]), "change": float(p.change[i]),
                         "n_examples": p.n})
    return rows


def profile_rows(run_id: str, p: FlowPass) -> list[dict]:
    return [{"run_id": run_id, "role": ROLES[r], "layer": l, "head": h, "target": PROFILE_TARGETS[t], "share": float(v),
             "n_examples": p.n} for (r, l, h, t), v in np.ndenumerate(p.profiles)]


def stability_part(run_a: str, run_b: str) -> str:
    """The head_stability part of a pair of runs, whichever of them computes it: ``<lower id>-<higher id>``.

    Each run's step compares it with every other seed whose maps are there, so of
    two seeds the one analysed later (after both maps exist, in any order or on
    any worker) always writes the pair, and writing it twice gives the same bytes
    (the distance is symmetric, computed in the same order). No step's key holds
    the other seeds: a new seed never makes an old one's step due again."""
    low, high = sorted((run_a, run_b))
    return f"{low}-{high}"


def stability_rows(run_id: str, p: FlowPass) -> dict[str, list[dict]]:
    """Per head_stability part, its rows (``run_id`` the lower run id of the pair)."""
    out = {}
    for other, values in p.stability.items():
        low, high = sorted((run_id, other))
        out[stability_part(run_id, other)] = [
            {"run_id": low, "other_run_id": high, "layer": i // p.n_heads, "head": i % p.n_heads,
             "distance": float(v), "n_examples": p.n} for i, v in enumerate(values)]
    return out


def rollout_rows(run_id: str, p: FlowPass) -> tuple[list[dict], pa.Table]:
    """cls_rollout (per role, layer and type: mean over inputs that have the type) and cls_rollout_tokens."""
    agg = []
    for r, role in enumerate(ROLES):
        count = np.isfinite(p.rollout_types[r]).sum(axis=0)  # [layer, feature]
        rolled = np.nansum(p.rollout_types[r], axis=0) / np.maximum(count, 1)
        raw = np.nansum(p.raw_types[r], axis=0) / np.maximum(count, 1)
        for (l, f), c in np.ndenumerate(count):
            agg.append({"run_id": run_id, "role": role, "layer": l, "feature": ROLLOUT_FEATURES[f],
                        "rollout": float(rolled[l, f]) if c else None, "raw": float(raw[l, f]) if c else None,
                        "n_examples": int(c)})
    cols: dict[str, list] = {k: [] for k in ("run_id", "role", "example", "position", "rollout", "raw")}
    for r, role in enumerate(ROLES):
        for e, (rolled, raw) in enumerate(p.last_rows[r]):
            cols["run_id"] += [run_id] * len(rolled)
            cols["role"] += [role] * len(rolled)
            cols["example"] += [e] * len(rolled)
            cols["position"] += list(range(len(rolled)))
            cols["rollout"] += rolled.tolist()
            cols["raw"] += raw.tolist()
    return agg, pa.table(cols)


def write(store: Store, run_id: str, p: FlowPass) -> None:
    cat = store.catalog
    cat.write("head_distances", run_id, distance_rows(run_id, p))
    cat.write("head_families", run_id, family_rows(run_id, p))
    cat.write("head_profiles", run_id, profile_rows(run_id, p))
    for part, rows in stability_rows(run_id, p).items():
        cat.write("head_stability", part, rows)
    agg, tokens = rollout_rows(run_id, p)
    cat.write("cls_rollout", run_id, agg)
    cat.write("cls_rollout_tokens", run_id, tokens)
