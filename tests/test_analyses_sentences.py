"""Relation sentences from a user's JSONL file and from FrameNet (its filters, on exemplars shaped like nltk's)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from bertsecrets.core.errors import UserError
from bertsecrets.ingest.analyses import sentences as S


def write(tmp_path, lines) -> object:
    path = tmp_path / "rel.jsonl"
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return path


def test_jsonl_token_spans_become_character_spans(tmp_path):
    path = write(tmp_path, [{"tokens": ["The", "cat", "chased", "a", "mouse"], "relation": "verb-object",
                             "pairs": [[[2, 3], [3, 5]]], "id": 7}, ""])
    [s] = S.read_jsonl(path)
    assert s.text == "The cat chased a mouse" and s.relation == "verb-object"
    (q, k), = s.pairs
    assert s.text[q[0]:q[1]] == "chased" and s.text[k[0]:k[1]] == "a mouse"


@pytest.mark.parametrize("line, message", [
    ("{not json", "rel.jsonl:1: not JSON"),
    ({"tokens": [], "relation": "r", "pairs": [[[0, 1], [1, 2]]]}, "'tokens' must be"),
    ({"tokens": ["a b"], "relation": "r", "pairs": [[[0, 1], [0, 1]]]}, "'tokens' must be"),
    ({"tokens": ["a", "b"], "pairs": [[[0, 1], [1, 2]]]}, "'relation' must"),
    ({"tokens": ["a", "b"], "relation": "r", "pairs": [[[0, 1], [1, 3]]]}, "token indices 0..2"),
    ({"tokens": ["a", "b"], "relation": "r", "pairs": [[0, 1]]}, "each of 'pairs'"),
    ({"tokens": ["a", "b"], "relation": "r", "pairs": []}, "'pairs' is empty"),
])
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    path = write(tmp_path, [line])
    with pytest.raises(UserError, match="rel.jsonl:1") as info:
        S.read_jsonl(path)
    assert message in str(info.value)


def test_jsonl_missing_or_empty_file(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        S.read_jsonl(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="holds no sentences"):
        S.read_jsonl(tmp_path / "empty.jsonl")


def exemplar(text: str, target: tuple[int, int], elements: list[tuple[int, int, str]], core=("Agent", "Theme")):
    fes = {name: SimpleNamespace(coreType="Core" if name in core else "Peripheral")
           for _, _, name in elements}
    return SimpleNamespace(text=text, Target=[target], FE=(elements, {}), frame=SimpleNamespace(FE=fes))


def test_framenet_filters_of_the_paper():
    text = "The old man quickly ate a red apple yesterday"
    ate = (text.index("ate"), text.index("ate") + 3)
    man = (text.index("The"), text.index("man") + 3)  # 3 tokens, 2 away from "ate": kept
    apple = (text.index("a red"), text.index("apple") + 5)  # 3 tokens, right after "ate": too close
    day = (text.index("yesterday"), len(text))  # peripheral: dropped
    s = S.framenet_sentence(exemplar(text, ate, [(*man, "Agent"), (*apple, "Theme"), (*day, "Time")]))
    assert s is not None and s.relation == "target-element"
    assert [(text[a:b], text[c:d]) for (a, b), (c, d) in s.pairs] == [("ate", "The old man")]
    long_text = " ".join(["word"] * 13)
    assert S.framenet_sentence(exemplar(long_text, (0, 4), [(10, 14, "Agent")])) is None  # 13 tokens
    wide = "Four of the men ate it"
    assert S.framenet_sentence(exemplar(wide, (16, 19), [(0, 15, "Agent")])) is None  # element of 4 tokens
    both = S.select_framenet([exemplar(text, ate, [(*man, "Agent")]), exemplar(long_text, (0, 4), [])])
    assert [s.relation for s in both] == ["target-element", "element-target"]
    assert both[1].pairs == [(p[1], p[0]) for p in both[0].pairs]


def test_framenet_absent_is_a_message_not_an_error(monkeypatch):
    monkeypatch.setattr(S, "framenet_available", lambda: False)
    items, why = S.framenet_sentences()
    assert items == [] and "framenet_v17" in why


def test_piece_pairs_cover_every_piece_of_both_spans():
    from bertsecrets.ingest.data import Split
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.models import bundled_path, load_tokenizer

    tokenizer = load_tokenizer(bundled_path())
    sentence = S.Sentence("Magnarelli hated it", "r", [((11, 16), (0, 10))])
    enc = encode(tokenizer, Split([sentence.text], None, np.zeros(1)), 32, keep_encodings=True)
    pieces = tokenizer.convert_ids_to_tokens(enc.input_ids[0])
    rows = S.piece_pairs([sentence], enc.encodings)
    assert {pieces[q] for _, q, _ in rows} == {"hated"}
    assert "".join(pieces[k].removeprefix("##") for k in sorted({k for _, _, k in rows})) == "magnarelli"
