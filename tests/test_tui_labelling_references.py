"""The labelling screen's references: the rules' most confident map of each class in the run, or a message."""

from __future__ import annotations

import numpy as np

from bertsecrets.store.labels import PATTERN_CLASSES
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.raster import resample
from bertsecrets.tui.widgets.references import ClassReferences
from conftest import settle, text_of
from test_tui_stores import handmade_store

RUN = "run-handmade0001"


def with_confidences(store) -> dict[str, tuple]:
    """Give the rule labels the hand-made maps' true classes and known confidences; the most confident map of
    each class, found here by hand."""
    rows = store.rows("SELECT * FROM map_classes WHERE run_id = ? ORDER BY role, example, layer, head", [RUN])
    rng = np.random.default_rng(3)
    for r in rows:
        r["label"] = PATTERN_CLASSES[(r["head"] + (r["layer"] if r["role"] == "finetuned" else 0)) % 5]
        r["confidence"] = float(rng.uniform())
    store.catalog.write("map_classes", RUN, rows)
    best = {}
    for r in rows:
        if r["source"] == "rules" and (r["label"] not in best or r["confidence"] > best[r["label"]]["confidence"]):
            best[r["label"]] = r
    return {label: (r["role"], r["example"], r["layer"], r["head"]) for label, r in best.items()}


async def test_references_are_the_most_confident_rule_maps_of_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTSECRETS_USER", "ada")
    store = handmade_store(tmp_path / "store", n_examples=4, n_layers=3, n_heads=6)
    expected = with_confidences(store)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "l")
        screen = app.screen
        assert screen.references_of == RUN
        got = {label: (r["role"], r["example"], r["layer"], r["head"]) for label, (r, _) in screen.references.items()}
        assert got == expected and set(got) == set(PATTERN_CLASSES)
        widget = screen.query_one(ClassReferences)
        assert widget.titles == list(PATTERN_CLASSES) and widget.maps.shape[:2] == (1, 5)
        size = widget.maps.shape[-1]
        for i, label in enumerate(PATTERN_CLASSES):
            role, example, layer, head = expected[label]
            stored = store.maps(RUN, role).head(example, layer, head)
            assert np.allclose(widget.maps[0, i], resample(stored, size, size))
        header = "".join(s.text for s in widget.render_line(0))
        assert all(widget.title(i, widget.thumb) in header for i in range(5))
        # The labeller is still shown, and labelling still moves on.
        assert "labeller ada" in text_of(app, "#label-context")
        first = screen.shown
        await settle(pilot, "1")
        assert screen.shown != first and screen.references_of == RUN


async def test_a_run_without_rule_labels_says_so_in_place(tmp_path):
    store = handmade_store(tmp_path / "store", n_examples=2, n_layers=2, n_heads=5)
    for part in store.catalog.parts("map_classes"):
        store.catalog.delete("map_classes", part)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "l")
        widget = app.screen.query_one(ClassReferences)
        assert widget.maps is None
        assert widget.message == "no rule labels in this run yet: examples of each class come with " \
                                 "`bertsecrets analyze mrpc`"
        assert app.screen.query_one("#label-map").matrix is not None  # the map to label still shows
