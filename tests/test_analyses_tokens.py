"""spaCy words aligned to word pieces by character offsets: types, negation, relations, no string matching."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets.ingest.analyses import tokens as T


@pytest.fixture(scope="module")
def nlp():
    return T.load_spacy()


@pytest.fixture(scope="module")
def tokenizer():
    from bertsecrets.ingest.models import bundled_path, load_tokenizer

    return load_tokenizer(bundled_path())


def annotate_pair(nlp, tokenizer, a: str, b: str | None):
    """Annotations of one input, its token rows made as the ingest makes them."""
    from bertsecrets.ingest.data import Split
    from bertsecrets.ingest.encode import encode, token_rows

    split = Split([a], None if b is None else [b], np.zeros(1))
    enc = encode(tokenizer, split, 128, keep_encodings=True)
    rows = token_rows("run-x", tokenizer, enc, 1)
    return T.annotate(rows, [(a, b)], T.parse(nlp, [(a, b)])), rows


def pieces_of(ann, rows, feature: str) -> list[str]:
    mask = ann.piece_features()[0, T.FEATURES.index(feature)]
    return [rows[p]["token"] for p in np.flatnonzero(mask)]


def test_negation_is_found_on_spacy_tokens_not_by_string(nlp, tokenizer):
    ann, rows = annotate_pair(nlp, tokenizer, "He didn't say nothing.", "Nobody is not here, never.")
    negation = pieces_of(ann, rows, "negation")
    # "n't" owns the pieces didn ' t (the tokenizer splits "didn't" so); "not" and "never" count.
    assert negation == ["didn", "'", "t", "not", "never"]
    assert "nothing" not in negation


def test_types_segments_and_specials(nlp, tokenizer):
    ann, rows = annotate_pair(nlp, tokenizer, "The cat chased a mouse.", "It was fast.")
    assert pieces_of(ann, rows, "noun") == ["cat", "mouse"]
    assert pieces_of(ann, rows, "verb") == ["chased"]
    assert pieces_of(ann, rows, "pronoun") == ["it"]
    assert pieces_of(ann, rows, "subject") == ["cat", "it"]
    assert pieces_of(ann, rows, "object") == ["mouse"]
    assert pieces_of(ann, rows, "cls") == ["[CLS]"]
    assert pieces_of(ann, rows, "sep") == ["[SEP]", "[SEP]"]
    assert ann.first_sep()[0] == 7 and ann.two_segments()[0]
    assert ann.punct[0].tolist()[: ann.lengths[0]] == [r["token"] == "." for r in rows]
    assert ann.segment[0, : ann.lengths[0]].tolist() == [0] * 8 + [1] * 5


def test_a_word_of_several_pieces_is_one_word_and_pairs_cover_all_its_pieces(nlp, tokenizer):
    ann, rows = annotate_pair(nlp, tokenizer, "Magnarelli hated the regime.", None)
    names = [r["token"] for r in rows]
    noun_words = [np.flatnonzero(ann.words[0, w]).tolist() for w in range(ann.words.shape[1])
                  if ann.word_features[0, w, T.FEATURES.index("noun")]]
    first = [names[p] for p in noun_words[0]]
    assert len(first) > 1 and "".join(t.removeprefix("##") for t in first) == "magnarelli"
    pairs = ann.pairs["verb-subject"]
    assert {(names[q], names[k]) for _, q, k in pairs} == {("hated", t) for t in first}
    reverse = ann.pairs["subject-verb"]
    assert sorted((k, q) for _, q, k in reverse) == sorted((q, k) for _, q, k in pairs)


def test_take_cuts_pads_and_renumbers(nlp, tokenizer):
    from bertsecrets.ingest.data import Split
    from bertsecrets.ingest.encode import encode, token_rows

    texts = [("The cat saw it.", "It ran."), ("A dog barked loudly at the mailman today.", None)]
    split = Split([t[0] for t in texts], [t[1] or "" for t in texts], np.zeros(2))
    enc = encode(tokenizer, split, 128, keep_encodings=True)
    ann = T.annotate(token_rows("r", tokenizer, enc, 2), texts, T.parse(nlp, texts))
    sub = ann.take(np.array([1]), 32)
    assert sub.segment.shape == (1, 32) and sub.lengths.tolist() == [ann.lengths[1]]
    assert (sub.segment[0, ann.lengths[1]:] == -1).all()
    assert all((rows[:, 0] == 0).all() for rows in sub.pairs.values())
    assert len(sub.pairs["verb-subject"]) == int((ann.pairs["verb-subject"][:, 0] == 1).sum())


def test_is_punct():
    assert T.is_punct(".") and T.is_punct("##,") and T.is_punct("\"")
    assert not T.is_punct("$") and not T.is_punct("+") and not T.is_punct("a.") and not T.is_punct("##")
