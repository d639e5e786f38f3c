"""The sentence view: word joining, layer means, rows and columns, wrapping and colouring on hand-made arrays,
then the screen through Pilot on a hand-made store whose tokens carry words and character offsets."""

from __future__ import annotations

import numpy as np
import pytest
from rich.style import Style

from bertsecrets.store import Store
from bertsecrets.tui import palette as palettes
from bertsecrets.tui import sentence
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.sentence import Pane, Piece, Placed
from bertsecrets.tui.widgets.sentence_text import SentenceText
from conftest import settle, text_of
from test_tui_stores import TOKENS, handmade_store

# "[CLS] play ##ing ball [SEP]": pieces 1 and 2 are one word.
TEXT = "Playing ball"
PIECES = [Piece("[CLS]"), Piece("play", 0, 0, 0, 4), Piece("##ing", 0, 0, 4, 7), Piece("ball", 0, 1, 8, 12),
          Piece("[SEP]")]
ATTN = np.array([
    [0.1, 0.2, 0.3, 0.4, 0.0],
    [0.5, 0.1, 0.1, 0.1, 0.2],
    [0.0, 0.3, 0.3, 0.2, 0.2],
    [0.25, 0.25, 0.25, 0.25, 0.0],
    [1.0, 0.0, 0.0, 0.0, 0.0],
])


def test_pieces_join_into_words_by_catalog_word_never_by_string():
    plain = sentence.units(PIECES, (TEXT,))
    assert [u.text for u in plain] == ["[CLS]", "play", "##ing", "ball", "[SEP]"]
    words = sentence.units(PIECES, (TEXT,), join=True)
    assert [(u.text, u.pieces) for u in words] == [("[CLS]", (0,)), ("Playing", (1, 2)), ("ball", (3,)),
                                                  ("[SEP]", (4,))]
    # Without offsets the pieces are glued ("##" dropped); "##" never joins what the catalog keeps apart.
    bare = [Piece("[CLS]"), Piece("play", 0, 0), Piece("##ing", 0, 0), Piece("##x", 0, 1)]
    assert [(u.text, u.pieces) for u in sentence.units(bare, (), join=True)] == [
        ("[CLS]", (0,)), ("playing", (1, 2)), ("x", (3,))]
    # The same word index in the second sentence is another word.
    pair = [Piece("a", 0, 0, 0, 1), Piece("b", 1, 0, 0, 1)]
    assert len(sentence.units(pair, ("a", "b"), join=True)) == 2
    assert sentence.unit_of(words, 2) == 1 and sentence.unit_of(words, 3) == 2


def test_joined_attention_sums_keys_and_averages_queries():
    words = sentence.units(PIECES, (TEXT,), join=True)
    got = sentence.joined(ATTN, words)
    # By hand: the word "Playing" (pieces 1, 2) as a query is the mean of rows 1 and 2; as a key, columns 1 + 2.
    rows = np.array([ATTN[0], (ATTN[1] + ATTN[2]) / 2, ATTN[3], ATTN[4]])
    want = np.stack([rows[:, 0], rows[:, 1] + rows[:, 2], rows[:, 3], rows[:, 4]], axis=1)
    assert got.shape == (4, 4) and np.allclose(got, want)
    assert np.allclose(got.sum(axis=1), 1.0)  # every row of ATTN sums to 1, and still does
    # Unjoined boxes give the matrix back; leading axes (layers, heads) are kept.
    plain = sentence.units(PIECES, (TEXT,))
    stacked = np.stack([ATTN, ATTN.T])
    assert np.allclose(sentence.joined(stacked, plain), stacked)


def test_head_or_layer_mean_and_rows_or_columns():
    maps = np.zeros((2, 3, 2, 2))
    maps[1, 0] = [[1, 0], [0, 1]]
    maps[1, 1] = [[0, 1], [1, 0]]
    maps[1, 2] = [[1, 0], [1, 0]]
    assert np.allclose(sentence.head_or_mean(maps, 1, 2), [[1, 0], [1, 0]])
    assert np.allclose(sentence.head_or_mean(maps, 1, None), [[2 / 3, 1 / 3], [2 / 3, 1 / 3]])
    assert np.allclose(sentence.vector(ATTN, 3, "from"), [0.25, 0.25, 0.25, 0.25, 0.0])
    assert np.allclose(sentence.vector(ATTN, 0, "to"), [0.1, 0.5, 0.0, 0.25, 1.0])
    with pytest.raises(ValueError):
        sentence.vector(ATTN, 0, "sideways")


def test_wrapping_keeps_boxes_whole_breaks_sentences_and_cuts_only_what_cannot_fit():
    lines = sentence.wrap(["aaa", "bb", "cc", "d"], 6)
    assert [[p.text for p in line] for line in lines] == [["aaa", " ", "bb"], ["cc", " ", "d"]]
    assert lines[0][2] == Placed(1, 4, "bb")
    assert [[p.unit for p in line] for line in sentence.wrap(["a", "b", "c"], 80, breaks=[2])] == [[0, -1, 1], [2]]
    long = sentence.wrap(["x", "abcdefghij", "y"], 4)
    assert [[p.text for p in line] for line in long] == [["x"], ["abcd"], ["efgh"], ["ij", " ", "y"]]
    assert all(sum(len(p.text) for p in line) <= 4 for line in long)
    # Wide characters count as two cells.
    assert [[p.text for p in line] for line in sentence.wrap(["日本", "語"], 5)] == [["日本"], ["語"]]


def test_up_and_down_go_to_the_nearest_box_on_the_next_line():
    lines = sentence.wrap(["alpha", "b", "c", "delta", "e"], 9)  # "alpha b c" / "delta e"
    assert sentence.line_of(lines, 3) == 1
    assert sentence.neighbour(lines, 2, 1) == 4  # "c" (columns 8-9) is nearest "e" (columns 6-7)
    assert sentence.neighbour(lines, 0, 1) == 3
    assert sentence.neighbour(lines, 3, -1) == 0
    assert sentence.neighbour(lines, 0, -1) == 0  # the first line: stays


def test_values_print_beside_the_text_without_a_leading_zero():
    assert sentence.label("bank", None) == "bank"
    assert sentence.label("bank", 0.614) == "bank .61"
    assert sentence.label("bank", 1.0) == "bank 1.00"
    assert sentence.label("bank", float("nan")) == "bank -"


def test_render_colours_each_box_by_its_level_and_marks_the_selected_one():
    palette = palettes.sequential(False)
    units = sentence.units(PIECES, (TEXT,))
    values = np.array([0.0, 0.25, 0.5, 1.0, np.nan])
    drawn = sentence.render(units, [Pane("title", values, 1.0), Pane("other", message="no maps here")], cursor=1,
                            width=80, palette=palette)
    assert [s.text for s in drawn.lines[0]] == ["title"]
    boxes = [s for s in drawn.lines[1] if s.text.strip()]
    assert [s.text for s in boxes] == ["[CLS]", "play", "##ing", "ball", "[SEP]"]
    levels = palette.levels(values, 0.0, 1.0)
    assert boxes[0].style == palette.cell(int(levels[0])) and boxes[3].style == palette.cell(palette.n - 1)
    assert boxes[2].style.bgcolor == palette.colors[8]  # 0.5 of 16 levels
    assert boxes[1].style == palette.cell(palette.n) + Style(bold=True, underline=True)  # the cursor
    assert boxes[4].style == Style()  # NaN: no colour
    assert drawn.cursor_lines == [1, 3] and [s.text for s in drawn.lines[4]] == ["no maps here"]
    assert drawn.placed[1][2] == Placed(1, 6, "play") and drawn.placed[0] == [] and drawn.placed[4] == []
    # With values printed, the text carries them (nothing depends on colour alone).
    shown = sentence.render(units, [Pane("t", values, 1.0)], cursor=0, width=80, palette=palette, values=True)
    assert "ball 1.00" in "".join(s.text for s in shown.lines[1])


# -- the screen ---------------------------------------------------------------------------

SPLIT = TOKENS.index("[SEP]") + 1


def words_of(tokens: list[str], text_a: str, text_b: str) -> list[dict]:
    """Word index and character offsets of each piece, as the ingest stores them (found here by hand)."""
    rows, cursor, word = [], {0: 0, 1: 0}, {0: -1, 1: -1}
    for p, t in enumerate(tokens):
        if t in ("[CLS]", "[SEP]"):
            rows.append({"word": None, "char_start": None, "char_end": None})
            continue
        seg = int(p >= SPLIT)
        text = (text_a if seg == 0 else text_b).lower()
        piece = t[2:] if t.startswith("##") else t
        start = text.index(piece, cursor[seg])
        if not t.startswith("##"):
            word[seg] += 1
        cursor[seg] = start + len(piece)
        rows.append({"word": word[seg], "char_start": start, "char_end": start + len(piece)})
    return rows


def store_with_words(root) -> Store:
    """The hand-made store, its tokens given the word and offsets the ingest would store ("it ##s" is one word)."""
    store = handmade_store(root, n_examples=4, n_layers=3, n_heads=6)
    run_id = "run-handmade0001"
    examples = {r["example"]: r for r in store.rows("SELECT * FROM examples WHERE run_id = ?", [run_id])}
    rows = store.rows("SELECT * FROM tokens WHERE run_id = ? ORDER BY example, position", [run_id])
    out = []
    for e, ex in examples.items():
        mine = [r for r in rows if r["example"] == e]
        extra = words_of([r["token"] for r in mine], ex["text_a"], ex["text_b"])
        out += [{**r, **x} for r, x in zip(mine, extra)]
    store.catalog.write("tokens", run_id, out)
    return store


def texts(widget: SentenceText) -> list[str]:
    return ["".join(s.text for s in widget.segments_at(y)) for y in range(len(widget.lines))]


async def test_sentence_screen_keys(tmp_path):
    store = store_with_words(tmp_path / "store")
    maps = {role: store.maps("run-handmade0001", role) for role in ("pretrained", "finetuned")}
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "w")
        assert app.current_mode == "sentence"
        screen = app.screen
        widget = screen.query_one(SentenceText)
        lines = texts(widget)
        # Both models, pretrained first; the second sentence on a line of its own.
        assert lines[0].startswith("pretrained · attention from “[CLS]”")
        assert lines[1] == "[CLS] the bank bought the report . [SEP]" and lines[2].startswith("it did not sell it ##s")
        assert any(line.startswith("fine-tuned") for line in lines)
        # The colours are the row of the selected token: head 1 of layer 1 of input 1.
        fine = [p for p in widget.panes if p.title.startswith("fine-tuned")][0]
        assert np.allclose(fine.values, maps["finetuned"].head(0, 0, 0)[0])

        await settle(pilot, "right", "right")  # "bank"
        assert screen.position == 2
        fine = [p for p in widget.panes if p.title.startswith("fine-tuned")][0]
        assert np.allclose(fine.values, maps["finetuned"].head(0, 0, 0)[2])
        status = text_of(app, "#sentence-status")
        assert f"itself {maps['finetuned'].head(0, 0, 0)[2, 2]:.3f}" in status

        await settle(pilot, "d")  # what attends to "bank": its column
        fine = [p for p in widget.panes if p.title.startswith("fine-tuned")][0]
        assert fine.title.startswith("fine-tuned · attention to “bank”")
        assert np.allclose(fine.values, maps["finetuned"].head(0, 0, 0)[:, 2])

        await settle(pilot, "right_square_bracket", "right_curly_bracket", "h")  # the mean of layer 2's heads
        assert (app.selection.layer, app.selection.head) == (1, 1)
        fine = [p for p in widget.panes if p.title.startswith("fine-tuned")][0]
        assert np.allclose(fine.values, maps["finetuned"].layer(0, 1).mean(axis=0)[:, 2], atol=1e-6)
        assert "mean of 6 heads" in text_of(app, "#sentence-context")

        await settle(pilot, "t")  # the fine-tuned model alone
        assert [p.title.split(" · ")[0] for p in widget.panes] == ["fine-tuned"]

        await settle(pilot, "j")  # words: "it ##s" is "its", its column the sum of both pieces' columns
        its = [u for u in screen.units if u.text == "its"]
        assert len(its) == 1 and its[0].pieces == (12, 13)
        assert "its shares" in texts(widget)[2]
        await settle(pilot, "end")
        assert screen.position == len(TOKENS) - 1
        await settle(pilot, "left", "left", "left")  # [SEP] . shares its: the word as a query, the mean of rows
        assert screen.position == 12
        await settle(pilot, "d")
        mean = maps["finetuned"].layer(0, 1).mean(axis=0)
        want = sentence.joined(mean, screen.units)[sentence.unit_of(screen.units, 12)]
        assert np.allclose(widget.panes[0].values, want, atol=1e-6)
        assert np.isclose(widget.panes[0].values.sum(), 1.0, atol=1e-3)

        await settle(pilot, "up")  # from the second sentence to the first line
        assert screen.position < SPLIT
        await settle(pilot, "v")  # the values printed after each box, as the status line has them
        value = widget.panes[0].values[0]
        assert texts(widget)[1].startswith(sentence.label("[CLS]", float(value)) + " ")
        await settle(pilot, "n")
        assert app.selection.example == 1 and screen.shown_key == ("run-handmade0001", 1)


def fine_values(widget: SentenceText) -> np.ndarray:
    return [p for p in widget.panes if p.title.startswith("fine-tuned")][0].values


async def test_maps_read_for_an_input_or_run_the_cursor_has_left_are_not_shown(tmp_path):
    """A read that lands late (the cursor moved on meanwhile) must not replace the current input's maps and words."""
    from bertsecrets.tui.messages import Loaded

    store = store_with_words(tmp_path / "store")
    run_id = "run-handmade0001"
    maps = store.maps(run_id, "finetuned")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "w")
        screen, widget = app.screen, app.screen.query_one(SentenceText)
        assert app.selection.example == 0 and np.allclose(fine_values(widget), maps.head(0, 0, 0)[0])
        pieces = list(screen.pieces)
        stale_maps = {role: np.full((3, 6, 5, 5), 0.2, dtype=np.float32) for role in ("pretrained", "finetuned")}
        stale = (stale_maps, [Piece(t) for t in ("[CLS]", "stale", "read", ".", "[SEP]")])
        # Of the next input of the run, or of the same input of another run (the task and seed keys keep the input).
        for key in ((run_id, 1), ("run-handmade0002", 0)):
            screen.maps_loaded(Loaded("example", (key, stale)))
        await settle(pilot, "right_square_bracket")  # the next head: drawn from what is held
        assert screen.shown_key == (run_id, 0) and screen.pieces == pieces
        assert "stale" not in "".join(texts(widget)) and "L=17" in text_of(app, "#sentence-context")
        assert np.allclose(fine_values(widget), maps.head(0, 0, 1)[0])
        await settle(pilot, "n")  # the next input: its own maps
        assert screen.shown_key == (run_id, 1) and np.allclose(fine_values(widget), maps.head(1, 0, 1)[0])


async def test_while_the_next_inputs_maps_are_read_the_old_ones_are_not_drawn_with_its_text(tmp_path, monkeypatch):
    import threading

    from bertsecrets.tui.screens import sentence as screen_module

    store = store_with_words(tmp_path / "store")
    maps = store.maps("run-handmade0001", "finetuned")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "w")
        widget, release = app.screen.query_one(SentenceText), threading.Event()
        read_input = screen_module.read_input

        def slow(reader, run_id, example):  # the read of input 2 waits until the test lets it go
            if example == 1:
                release.wait(10)
            return read_input(reader, run_id, example)

        monkeypatch.setattr(screen_module, "read_input", slow)
        app.screen._pieces.clear()  # input 2's words were read ahead: without them `n` reads in a worker
        await pilot.press("n", "right_square_bracket")
        await pilot.pause()
        assert (app.selection.example, app.selection.head) == (1, 1)
        assert "input 2/4 · reading…" in text_of(app, "#sentence-context")
        assert np.allclose(fine_values(widget), maps.head(0, 0, 0)[0])  # input 1's head 1 stays, not drawn again
        release.set()
        await settle(pilot)
        assert np.allclose(fine_values(widget), maps.head(1, 0, 1)[0])
        assert "reading" not in text_of(app, "#sentence-context")


async def test_words_of_a_real_ingest_read_as_the_input_was_written(tiny_store):
    """On the tokens the ingest stored (real uncased tokenizer): each joined word is its span of the text."""
    import re

    from bertsecrets.tui.reader import Reader

    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    reader = Reader(store)
    examples = {r["example"]: r for r in reader.examples(run_id)}
    maps = store.maps(run_id, "finetuned")
    for e in range(len(maps)):
        pieces = [Piece.from_row(r) for r in reader.pieces(run_id, e)]
        ex = examples[e]
        words = sentence.units(pieces, (ex["text_a"], ex["text_b"]), join=True)
        for segment, text in ((0, ex["text_a"]), (1, ex["text_b"])):
            shown = [u.text for u in words if u.segment == segment and u.text not in ("[CLS]", "[SEP]")]
            # BERT's words: runs of letters and digits, or single punctuation marks (the text may be truncated).
            expected = re.findall(r"\w+|[^\w\s]", text)
            assert shown == expected[: len(shown)] and shown, (e, segment)
        # Rows of the joined map of a real head still sum to 1.
        m = sentence.joined(maps.head(e, 0, 0), words)
        assert np.allclose(m.sum(axis=1), 1.0, atol=len(pieces) / 255)
