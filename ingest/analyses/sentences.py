"""Relation heads on sentences outside the dev set: a user's JSONL file, and FrameNet through nltk.

Both give sentences with token-pair relations; the run's pretrained and
fine-tuned models are run on them (their maps kept in a temporary map set,
not in the store), and ingest.analyses.relations scores every head.

JSONL format, one sentence a line::

    {"tokens": ["The", "cat", "chased", "a", "mouse"], "relation": "verb-object",
     "pairs": [[[2, 3], [3, 5]]]}

``tokens`` are the sentence's words (joined by single spaces to make its
text); each pair is ``[[from_start, from_end], [to_start, to_end]]``: two
token spans, 0-indexed, end exclusive. The attention goes from the first
span's pieces (queries) to the second's (keys). Lines may carry other keys.

FrameNet (nltk's ``framenet_v17`` corpus, exemplar sentences; each carries
one annotated frame) with the paper's filters: at most 12 tokens, core frame
elements of at most 3 tokens, linked tokens at least 2 tokens apart. The
relation "target-element" goes from the frame-evoking target to each core
element, "element-target" back. At most FRAMENET_MAX_SENTENCES are used
(reading all of FrameNet's exemplars takes long; the paper had 473).
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from bertsecrets.core.errors import UserError

FRAMENET_CORPUS = "corpora/framenet_v17"
FRAMENET_FILTERS = {"max_tokens": 12, "max_element_tokens": 3, "min_distance": 2, "core_only": True}
FRAMENET_MAX_SENTENCES = 1000
ALIGN_MAX_LENGTH = 128

Span = tuple[int, int]


@dataclass
class Sentence:
    """A sentence and the character spans of one relation's pairs (query span, key span)."""

    text: str
    relation: str
    pairs: list[tuple[Span, Span]]


# -- the user's JSONL file ------------------------------------------------------------


def _char_spans(tokens: list[str]) -> list[Span]:
    spans, at = [], 0
    for tok in tokens:
        spans.append((at, at + len(tok)))
        at += len(tok) + 1
    return spans


def read_jsonl(path: Path) -> list[Sentence]:
    """Sentences of a relations file (format in the module's docstring); a bad line is a one-line error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the relations file {path}: {exc.strerror}") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{where}: not JSON ({exc.msg}); each line is one sentence object") from None
        tokens, relation, pairs = item.get("tokens"), item.get("relation"), item.get("pairs")
        if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) and t and " " not in t for t in tokens)):
            raise UserError(f"{where}: 'tokens' must be a list of words without spaces")
        if not isinstance(relation, str) or not relation:
            raise UserError(f"{where}: 'relation' must name the relation, e.g. \"verb-object\"")
        spans = _char_spans(tokens)
        converted = []
        for pair in pairs if isinstance(pairs, list) else [None]:
            try:
                (a, b), (c, d) = pair
                assert all(isinstance(v, int) for v in (a, b, c, d)) and 0 <= a < b <= len(tokens) and 0 <= c < d <= len(tokens)
            except (TypeError, ValueError, AssertionError):
                raise UserError(
                    f"{where}: each of 'pairs' must be [[from_start, from_end], [to_start, to_end]], token indices "
                    f"0..{len(tokens)}, end exclusive") from None
            converted.append(((spans[a][0], spans[b - 1][1]), (spans[c][0], spans[d - 1][1])))
        if not converted:
            raise UserError(f"{where}: 'pairs' is empty")
        out.append(Sentence(" ".join(tokens), relation, converted))
    if not out:
        raise UserError(f"the relations file {path} holds no sentences")
    return out


# -- FrameNet ---------------------------------------------------------------------------


def framenet_available() -> bool:
    if importlib.util.find_spec("nltk") is None:
        return False
    import nltk

    try:
        nltk.data.find(FRAMENET_CORPUS)
    except LookupError:
        return False
    return True


def _token_index(text: str) -> list[Span]:
    spans, at = [], 0
    for tok in text.split():
        start = text.index(tok, at)
        spans.append((start, start + len(tok)))
        at = start + len(tok)
    return spans


def _tokens_of(span: Span, tokens: list[Span]) -> list[int]:
    return [i for i, (s, e) in enumerate(tokens) if s < span[1] and e > span[0]]


def framenet_sentence(exemplar: Any) -> Sentence | None:
    """One FrameNet exemplar as a target-element Sentence, or None when the paper's filters reject it.

    Uses the attributes of nltk's exemplar sentences: ``text``, ``Target`` [(start, end)],
    ``FE`` ([(start, end, name)], ...) and ``frame.FE[name].coreType``.
    """
    f = FRAMENET_FILTERS
    text = exemplar.text
    tokens = _token_index(text)
    if not tokens or len(tokens) > f["max_tokens"] or not exemplar.Target:
        return None
    target_tokens = sorted({i for span in exemplar.Target for i in _tokens_of(span, tokens)})
    if not target_tokens:
        return None
    target = (tokens[target_tokens[0]][0], tokens[target_tokens[-1]][1])
    pairs = []
    for start, end, name in exemplar.FE[0]:
        element = exemplar.frame.FE.get(name)
        if element is None or (f["core_only"] and element.coreType != "Core"):
            continue
        idx = _tokens_of((start, end), tokens)
        if not idx or len(idx) > f["max_element_tokens"]:
            continue
        if min(abs(i - j) for i in idx for j in target_tokens) < f["min_distance"]:
            continue
        pairs.append((target, (start, end)))
    return Sentence(text, "target-element", pairs) if pairs else None


def select_framenet(exemplars: Iterable[Any], limit: int = FRAMENET_MAX_SENTENCES) -> list[Sentence]:
    """The exemplars that pass the filters, both directions of each relation, at most ``limit`` sentences."""
    out: list[Sentence] = []
    for exemplar in exemplars:
        sentence = framenet_sentence(exemplar)
        if sentence is None:
            continue
        out.append(sentence)
        out.append(Sentence(sentence.text, "element-target", [(b, a) for a, b in sentence.pairs]))
        if len(out) >= 2 * limit:
            break
    return out


def framenet_sentences() -> tuple[list[Sentence], str | None]:
    """FrameNet's filtered sentences, or ([], why not) when the corpus is not installed."""
    if not framenet_available():
        return [], ("nltk's FrameNet corpus is not installed (pip install nltk; python -m nltk.downloader "
                    "framenet_v17); relation heads come from spaCy arcs and --relations files")
    from nltk.corpus import framenet

    return select_framenet(framenet.exemplars()), None


# -- scoring heads ------------------------------------------------------------------------


def piece_pairs(sentences: list[Sentence], encodings: list[Any]) -> np.ndarray:
    """Rows (sentence, query piece, key piece) of every pair, by character overlap with the pieces' offsets."""
    rows = []
    for i, (sentence, enc) in enumerate(zip(sentences, encodings)):
        spans = [(p, s, e) for p, ((s, e), seq) in enumerate(zip(enc.offsets, enc.sequence_ids)) if seq is not None]
        for (qs, qe), (ks, ke) in sentence.pairs:
            queries = [p for p, s, e in spans if s < qe and e > qs]
            keys = [p for p, s, e in spans if s < ke and e > ks]
            rows.extend((i, q, k) for q in queries for k in keys)
    return np.array(sorted(set(rows)), dtype=np.int64).reshape(-1, 3)


def relation_scores(store, run_id: str, sentences: list[Sentence], progress=None) -> dict[str, np.ndarray]:
    """Per relation, [role, sentence, layer, head] maxima over its pairs, from the run's two models."""
    from bertsecrets.ingest.analyses.relations import per_input, rows_of
    from bertsecrets.ingest.data import Split
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.extract import extract_maps
    from bertsecrets.ingest.models import load_classifier, load_finetuned, load_tokenizer, quiet_transformers
    from bertsecrets.core.tasks import get_task
    from bertsecrets.ingest.train import pick_device
    from bertsecrets.store.maps import MapReader, MapWriter

    quiet_transformers()
    record = store.run(run_id)
    task = get_task(record["task"])
    pretrained_path = json.loads(record["settings_json"])["model_path"]
    tokenizer = load_tokenizer(store.model_dir(run_id))
    split = Split([s.text for s in sentences], None, np.zeros(len(sentences)))
    data = encode(tokenizer, split, min(int(record["max_length"] or ALIGN_MAX_LENGTH), 512), keep_encodings=True)
    pairs = piece_pairs(sentences, data.encodings)
    relations = sorted({s.relation for s in sentences})
    member = {name: np.array([s.relation == name for s in sentences]) for name in relations}
    device = pick_device("auto")
    n_layers, n_heads = int(record["n_layers"]), int(record["n_heads"])
    out = {name: np.full((2, len(sentences), n_layers, n_heads), np.nan) for name in relations}
    bar = progress.add_task("relation sentences", total=2 * len(sentences), info="") if progress else None
    regression = task.label_kind == "regression"
    for r, role in enumerate(("pretrained", "finetuned")):
        if role == "pretrained":
            model = load_classifier(Path(pretrained_path), task.num_labels, regression, seed=int(record["seed"] or 0))
        else:
            model = load_finetuned(store.model_dir(run_id))
        with tempfile.TemporaryDirectory(prefix="bertsecrets-sentences-") as tmp:
            writer = MapWriter(Path(tmp) / "maps.zarr", Path(tmp) / "progress.json", data.lengths, n_layers, n_heads)
            extract_maps(model, data, writer, device, on_batch=(lambda k: progress.update(bar, advance=k)) if progress else None)
            for examples, attn in MapReader(Path(tmp) / "maps.zarr").iter_buckets():
                scores = per_input(attn, rows_of(pairs, examples, len(sentences)))
                for name in relations:
                    mask = member[name][examples]
                    out[name][r, examples[mask]] = scores[mask]
        del model
    return out
