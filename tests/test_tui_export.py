"""Exports read back: PNG sizes and the colours of known cells, SVG labels, the bertviz page's tokens and maps."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from bertsecrets.core.errors import UserError
from bertsecrets.store.labels import PATTERN_CLASSES
from bertsecrets.tui import export
from bertsecrets.tui import palette as palettes
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.export import Panel
from bertsecrets.tui.stats import Grid
from conftest import settle, text_of
from test_tui_stores import TOKENS, handmade_store

RUN = "run-handmade0001"


def pixel(png: np.ndarray, box: tuple[float, float, float, float], rows: int, cols: int, r: int, c: int,
          at: float = 0.5):
    """The RGB (0-255) of cell (r, c) of a matrix drawn in ``box`` of the PNG, ``at`` across and down the cell."""
    left, top, right, bottom = box
    x = left + (c + at) * (right - left) / cols
    y = top + (r + at) * (bottom - top) / rows
    return tuple(int(round(v * 255)) for v in png[int(y), int(x), :3])


def rgb(palette: palettes.Palette, level: int) -> tuple[int, int, int]:
    return tuple(palette.colors[level].get_truecolor())


def test_a_map_is_drawn_with_the_screens_colours_and_token_labels(tmp_path):
    seq, div = palettes.sequential(False), palettes.diverging(False)
    matrix = np.array([[0.0, 0.5, 0.99], [0.2, 0.4, 0.4], [1.0, 0.0, 0.0]])
    tokens = ["[CLS]", "a<b>&c", "$x$"]
    written = export.write_map([Panel("fine-tuned", matrix, seq, 0.0, 1.0),
                                Panel("difference", matrix - 0.5, div, -0.5, 0.5)],
                               tokens, "MRPC input 1, layer 2, head 3", "one", where=tmp_path)
    png_path, svg_path = written.paths
    assert (png_path.name, svg_path.name) == ("one.png", "one.svg") and not list(tmp_path.glob("*.part"))
    png = imread(png_path)
    side = max(export.MIN_INCHES, export.INCH_PER_TOKEN * 3 + 1.5)
    assert png.shape[:2] == (round((side + 1.2) * export.DPI), round(2 * (side + 1.2) * export.DPI))
    for r in range(3):
        for c in range(3):
            level = int(seq.levels(matrix[r, c:c + 1], 0.0, 1.0)[0])
            assert pixel(png, written.boxes[0], 3, 3, r, c) == rgb(seq, level), (r, c)
            level = int(div.levels(matrix[r, c:c + 1] - 0.5, 0.0, 0.5)[0])
            assert pixel(png, written.boxes[1], 3, 3, r, c) == rgb(div, level), (r, c)
    svg = svg_path.read_text()
    # Text stays text, printed literally: markup-looking tokens escaped, "$" never read as mathematics.
    for label in ("[CLS]", "a&lt;b&gt;&amp;c", "$x$", "fine-tuned", "difference", "MRPC input 1, layer 2, head 3",
                  "query", "key"):
        assert label in svg, label


def test_a_grid_of_classes_and_one_of_values(tmp_path):
    classes = palettes.classes()
    values = np.array([[0, 1, 2], [3, 4, np.nan]])
    grid = Grid(values, "cat", text=[["V", "D", "VD"], ["B", "H", ""]], note="most frequent class (rules)")
    written = export.write_grid(grid, classes, "MRPC pattern class", "classes", classes=PATTERN_CLASSES,
                                where=tmp_path)
    png = imread(written.paths[0])
    for layer, head in ((0, 0), (0, 2), (1, 1)):
        # Near the cell's corner: its text is in the middle.
        assert pixel(png, written.boxes[0], 2, 3, layer, head, at=0.15) == rgb(classes, int(values[layer, head]))
    assert pixel(png, written.boxes[0], 2, 3, 1, 2) == (255, 255, 255)  # missing: empty
    svg = written.paths[1].read_text()
    assert all(name in svg for name in PATTERN_CLASSES) and "layer" in svg and "head" in svg
    # Layers and heads from 1: tick labels 1..3 for heads and 1..2 for layers, never 0.
    ticks = set(re.findall(r">\s*(\d)\s*<", svg))
    assert {"1", "2", "3"} <= ticks and "0" not in ticks

    seq = palettes.sequential(True)
    numbers = Grid(np.array([[0.1, 0.9]]), "seq", low=0.0, high=1.0, marks=np.array([[False, True]]))
    written = export.write_grid(numbers, seq, "entropy", "entropy", where=tmp_path)
    png = imread(written.paths[0])
    assert pixel(png, written.boxes[0], 1, 2, 0, 1, at=0.15) == rgb(seq, int(seq.levels(np.array([0.9]), 0.0, 1.0)[0]))
    assert f">{numbers.fmt(0.9)}*<" in written.paths[1].read_text().replace(" ", "")  # the value and its mark


def test_the_bertviz_page_holds_tokens_and_maps_and_nothing_in_them_is_markup():
    maps = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 3, 4)).astype(np.float32)
    tokens = ["[CLS]", "</script><b>", "x&y", "[SEP]"]
    page = export.bertviz_page(tokens, {"finetuned": maps}, 2, "MRPC <input> 1", about="a & b")
    data = export.read_page_data(page)
    assert data["tokens"] == tokens and data["sentence_b_start"] == 2
    assert np.abs(np.array(data["attention"]["finetuned"]) - maps).max() <= 0.5 * 10 ** -export.DECIMALS + 1e-9
    assert "</script><b>" not in page and "<title>MRPC &lt;input&gt; 1</title>" in page and "a &amp; b" in page
    # bertviz's two views, its script unmodified around the params it is given.
    assert page.count("requirejs(['jquery', 'd3']") == 2 and "PYTHON_PARAMS" not in page
    assert 'bertsecretsParams("head", "finetuned", "bertviz-' in page
    with pytest.raises(Exception, match="shape"):
        export.bertviz_page(tokens[:3], {"finetuned": maps}, None, "t")


def test_the_page_markup_and_scripts_are_bertvizs_own():
    import bertviz  # a dependency; imported here only, to compare (the browser reads its scripts as files)
    import torch

    attention = [torch.full((1, 2, 3, 3), 1 / 3) for _ in range(2)]
    for view, function in (("head", bertviz.head_view), ("model", bertviz.model_view)):
        for b in (None, 1):
            out = function(attention, ["[CLS]", "a", "[SEP]"], sentence_b_start=b, html_action="return").data
            markup = out.split("</script>", 1)[1].split('\n<script type="text/javascript">', 1)[0]
            root = re.search(r'id="(bertviz-[0-9a-f]+)"', markup).group(1)
            assert export.view_html(view, root, export.filters_of(b)) == markup
            assert export.bertviz_js(view) in out.replace(re.search(r"const params = (.*);", out).group(1),
                                                          "PYTHON_PARAMS")


def test_without_bertviz_or_with_a_script_it_cannot_fill_the_page_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"^bertviz is not installed.*pip install"):
        export.bertviz_js("head")
    monkeypatch.undo()
    (tmp_path / "head_view.js").write_text("requirejs([], function () { const params = {}; });")
    monkeypatch.setattr(export, "bertviz_folder", lambda: tmp_path)
    with pytest.raises(UserError, match="no PYTHON_PARAMS"):
        export.bertviz_js("head")
    with pytest.raises(UserError, match="cannot read bertviz's model_view.js"):
        export.bertviz_js("model")


async def test_export_keys_on_the_map_and_grid_screens(tmp_path, monkeypatch):
    folder = tmp_path / "exports"
    monkeypatch.setenv("BERTSECRETS_EXPORTS", str(folder))
    store = handmade_store(tmp_path / "store", n_examples=3, n_layers=2, n_heads=5)
    maps = {role: store.maps(RUN, role) for role in ("pretrained", "finetuned")}
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "m", "n", "right_square_bracket", "e")  # input 2, head 2, all three panes
        status = text_of(app, "#map-status")
        png = folder / "mrpc-run-handmade0001-input2-L1H2-all.png"
        assert status == f"wrote {png} and {png.with_suffix('.svg')}"
        assert png.exists() and "fine-tuned − pretrained" in png.with_suffix(".svg").read_text()

        await settle(pilot, "b")
        page = folder / "mrpc-run-handmade0001-input2-bertviz.html"
        assert text_of(app, "#map-status") == f"wrote {page}"
        data = export.read_page_data(page.read_text())
        n = int(maps["finetuned"].lengths[1])
        assert data["tokens"] == TOKENS[: n - 1] + ["[SEP]"]
        assert data["sentence_b_start"] == TOKENS.index("[SEP]") + 1
        for role in ("pretrained", "finetuned"):
            assert np.abs(np.array(data["attention"][role]) - maps[role].example(1)).max() <= 5e-6

        await settle(pilot, "g", "e")
        legend = text_of(app, "#heads-legend")
        written = legend.splitlines()[-1]
        assert written.startswith(f"wrote {folder}/mrpc-run-handmade0001-grid-") and written.endswith(".svg")
        assert len(list(folder.glob("*grid*.png"))) == 1

    # In a web browser the files written on the server are also sent to it.
    sent = []
    monkeypatch.setattr(BrowseApp, "is_web", property(lambda self: True))
    monkeypatch.setattr(BrowseApp, "deliver_binary", lambda self, path, **kw: sent.append(Path(path)))
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "m", "e")
        status = text_of(app, "#map-status")
        assert status.endswith("; sent to this browser") and [p.suffix for p in sent] == [".png", ".svg"]
    monkeypatch.undo()
    monkeypatch.setenv("BERTSECRETS_EXPORTS", str(folder))

    # A folder that cannot be made: one line in place, nothing else breaks.
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BERTSECRETS_EXPORTS", str(tmp_path / "file" / "sub"))
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "m", "e")
        status = text_of(app, "#map-status")
        assert status.startswith("not exported: cannot make the exports folder") and "BERTSECRETS_EXPORTS" in status
        assert app.is_running
