"""The browser's pure parts: palettes, resampling, half-block strips, statistics, the labelling queue, the reader."""

from __future__ import annotations

import numpy as np
import pytest
from rich.color import Color, ColorSystem

from bertsecrets.tui import palette
from bertsecrets.tui.raster import HALF_BLOCK, half_block_segments, resample
from bertsecrets.tui.reader import Reader, RunStats
from bertsecrets.tui.sampling import MapKey, Source, label_queue
from bertsecrets.tui.stats import STATS, head_details, stat_grid, top
from bertsecrets.tui.widgets.heatmap import cells_of, display_size, tokens_of
from bertsecrets.store.labels import PATTERN_CLASSES, Labels
from test_tui_stores import handmade_store, head_value, write_analysis_rows


def lightness(rgb: tuple[int, int, int]) -> float:
    """CIELAB L* of an sRGB colour."""
    c = np.asarray(rgb, dtype=float) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    y = c @ np.array([0.2126, 0.7152, 0.0722])
    return float(116 * np.cbrt(y) - 16 if y > 0.008856 else 903.3 * y)


# -- palettes -------------------------------------------------------------------


@pytest.mark.parametrize("indices", [palette.SEQUENTIAL_256, palette.DIVERGING_256, palette.CLASSES_256,
                                     (palette.CURSOR_SEQUENTIAL, palette.CURSOR_DIVERGING)])
def test_256_colours_reach_the_terminal_as_the_same_indices(indices):
    # Textual turns every colour into RGB; on a 256-colour terminal Rich maps it back. It must land on the index.
    for index in indices:
        rgb = palette.xterm_rgb(index)
        assert Color.from_rgb(*rgb).downgrade(ColorSystem.EIGHT_BIT).number == index


def test_sequential_ramp_gets_lighter_at_every_step():
    assert all(np.diff([lightness(palette.xterm_rgb(i)) for i in palette.SEQUENTIAL_256]) > 2)


def test_diverging_ramp_gets_lighter_away_from_its_centre():
    values = [lightness(palette.xterm_rgb(i)) for i in palette.DIVERGING_256]
    centre = len(values) // 2
    assert all(np.diff(values[centre + 1:]) > 0) and all(np.diff(values[:centre]) < 0)


def test_cursor_colours_are_not_in_their_ramps():
    assert palette.CURSOR_SEQUENTIAL not in palette.SEQUENTIAL_256
    assert palette.CURSOR_DIVERGING not in palette.DIVERGING_256


@pytest.mark.parametrize("truecolor", [False, True])
def test_levels(truecolor):
    seq = palette.sequential(truecolor)
    assert seq.levels(np.array([0.0, 1.0, 0.5, np.nan, -3, 7]), 0.0, 1.0).tolist() == \
        [0, seq.n - 1, seq.n // 2, -1, 0, seq.n - 1]
    div = palette.diverging(truecolor)
    centre = div.levels(np.array([0.0]), 0, 1.0)[0]
    assert centre == div.n // 2 and div.colors[centre] == Color.from_rgb(*palette.xterm_rgb(235))
    assert div.levels(np.array([-1.0, 1.0]), 0, 1.0).tolist() == [0, div.n - 1]


def test_truecolor_ramp_passes_through_the_256_anchors():
    smooth = palette.sequential(True)
    first, last = smooth.colors[0].get_truecolor(), smooth.colors[-1].get_truecolor()
    assert tuple(first) == palette.xterm_rgb(palette.SEQUENTIAL_256[0])
    assert tuple(last) == palette.xterm_rgb(palette.SEQUENTIAL_256[-1])


# -- resampling and strips ------------------------------------------------------


def naive_resample(m: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols))
    R, C = m.shape
    for i in range(rows):
        for j in range(cols):
            if rows >= R:
                r0, r1 = i * R // rows, i * R // rows + 1
            else:
                r0, r1 = min(r for r in range(R) if r * rows // R == i), max(r for r in range(R) if r * rows // R == i) + 1
            if cols >= C:
                c0, c1 = j * C // cols, j * C // cols + 1
            else:
                c0, c1 = min(c for c in range(C) if c * cols // C == j), max(c for c in range(C) if c * cols // C == j) + 1
            out[i, j] = m[r0:r1, c0:c1].max()
    return out


@pytest.mark.parametrize("shape,size", [((17, 17), (5, 5)), ((17, 17), (34, 34)), ((16, 16), (4, 4)), ((7, 9), (3, 18)),
                                        ((1, 1), (2, 2)), ((5, 5), (5, 5))])
def test_resample_is_max_pooling_or_repetition(shape, size):
    m = np.random.default_rng(0).random(shape)
    assert np.array_equal(resample(m, *size), naive_resample(m, *size))


def test_resample_keeps_a_single_bright_column_when_shrinking():
    m = np.full((64, 64), 0.01)
    m[:, 37] = 0.9
    small = resample(m, 8, 8)
    assert np.allclose(small[:, 37 * 8 // 64], 0.9) and np.allclose(np.delete(small, 37 * 8 // 64, axis=1), 0.01)


def test_half_block_segments_draw_upper_as_foreground_and_lower_as_background():
    pal = palette.sequential(False)
    upper, lower = np.array([0, 0, 3, 3, -1]), np.array([5, 5, 5, 1, 2])
    segments = half_block_segments(upper, lower, pal)
    cells = [(seg.style.color, seg.style.bgcolor) for seg in segments for _ in seg.text]
    assert "".join(seg.text for seg in segments) == HALF_BLOCK * 5
    assert len(segments) == 4  # equal neighbours share a segment
    assert cells == [(pal.color(u), pal.color(v)) for u, v in zip(upper, lower)]
    odd = half_block_segments(np.array([2, 2]), None, pal)  # the last line of an odd-sized map
    assert odd[0].style.bgcolor is None


@pytest.mark.parametrize("n", [1, 2, 5, 17, 45, 128])
@pytest.mark.parametrize("zoom", [0.25, 0.5, 1.0, 2.0])
def test_token_cells_and_cell_tokens_agree(n, zoom):
    size = display_size(n, zoom)
    shown = np.zeros(size, dtype=int)
    for token in range(n):
        start, stop = cells_of(token, n, size)
        assert 0 <= start < stop <= size
        for cell in range(start, stop):
            lo, hi = tokens_of(cell, n, size)
            assert lo <= token < hi
            shown[cell] += 1
    assert (shown >= 1).all()


# -- statistics -----------------------------------------------------------------


def test_a_colour_scales_top_is_the_largest_finite_value_of_all_its_arrays_or_the_default():
    arrays = [np.array([[np.nan, -3.0], [0.25, np.inf]]), np.array([0.5, -np.inf]), np.array([])]
    naive = max((float(v) for a in arrays for v in a.ravel() if np.isfinite(v)), default=None)
    assert top(*arrays) == naive == 0.5
    assert top(np.array([-1.0, np.nan])) == 1.0 and top(np.array([0.0]), default=0.01) == 0.01
    assert top(default=0.01) == 0.01  # no arrays at all: no task has a grid yet


@pytest.fixture
def run_stats(tmp_path) -> RunStats:
    store = handmade_store(tmp_path / "s", n_layers=3, n_heads=4)
    return Reader(store).run_stats("run-handmade0001")


def test_stat_grids_hold_the_stored_values(run_stats):
    stat = next(s for s in STATS if s.key == "entropy")
    grid, _ = stat_grid(stat, run_stats, None, "finetuned")
    expected = [[2 * head_value(l, h, 1) for h in range(4)] for l in range(3)]
    assert np.allclose(grid.values, expected)
    assert grid.low == pytest.approx(np.min(expected)) and grid.high == pytest.approx(np.max(expected))


def test_pattern_class_grid_names_each_heads_most_frequent_class(run_stats):
    grid, option = stat_grid(STATS[0], run_stats, None, "finetuned")
    assert option == "dominant" and grid.kind == "cat"
    for layer in range(3):
        for head in range(4):
            assert grid.values[layer, head] == (layer + head) % 5
    share, option = stat_grid(STATS[0], run_stats, "block", "finetuned")
    assert option == "block" and share.values[0, 3] == pytest.approx(0.6) and share.values[0, 0] == pytest.approx(0.1)


def test_ablation_grid_marks_exactly_the_intervals_that_exclude_zero(run_stats):
    stat = next(s for s in STATS if s.key == "ablation")
    grid, option = stat_grid(stat, run_stats, None, "finetuned")
    assert option == "accuracy" and grid.kind == "div"
    rows = {(r["layer"], r["head"]): r for r in run_stats.rows("ablation") if r["kind"] == "head"}
    for (layer, head), row in rows.items():
        assert grid.values[layer, head] == pytest.approx(row["delta"])
        assert bool(grid.marks[layer, head]) == (row["ci_low"] > 0 or row["ci_high"] < 0)
    assert grid.low == -grid.high == -max(abs(r["delta"]) for r in rows.values())


def test_missing_statistics_give_no_grid(tmp_path):
    store = handmade_store(tmp_path / "s", with_analyses=False)
    stats = Reader(store).run_stats("run-handmade0001")
    for stat in STATS:
        assert stat_grid(stat, stats, None, "finetuned")[0] is None
        assert f"run `bertsecrets {stat.command} mrpc`" in stat.missing("mrpc")
    assert dict(head_details(stats, 0, 0, "finetuned"))["entropy"] == "-"


def test_head_details_show_every_table(run_stats):
    details = dict(head_details(run_stats, 1, 2, "pretrained"))
    assert details["entropy"] == f"{2 * head_value(1, 2, 0):.2f}"
    assert details["class"].startswith("block 60%")  # class (1 + 2) % 5 = 3
    delta = (head_value(1, 2, 3) - 0.5) / 10  # as written: interval delta +- 0.02
    assert details["disable: accuracy"] == f"{100 * delta:+.1f} [{100 * (delta - 0.02):+.1f}, {100 * (delta + 0.02):+.1f}]" \
        + (" *" if abs(delta) > 0.02 else "")
    assert details["verb-subject"] == f"{head_value(1, 2, 5):.3f}"


# -- the labelling queue ---------------------------------------------------------


def test_label_queue_spreads_over_runs_and_heads():
    sources = [Source("a", "mrpc", 50, 3, 4), Source("b", "rte", 30, 2, 2)]
    queue = label_queue(sources, set(), "ann", size=40)
    assert len(queue) == len(set(queue)) == 40
    by_run = [k for k in queue if k.run_id == "a"], [k for k in queue if k.run_id == "b"]
    assert len(by_run[0]) == len(by_run[1]) == 20  # the runs take turns
    first_cycle = [(k.layer, k.head) for k in by_run[0][:12]]
    assert sorted(first_cycle) == [(l, h) for l in range(3) for h in range(4)]  # every head once before any again
    assert {k.role for k in queue} == {"pretrained", "finetuned"}
    assert all(0 <= k.example < 50 for k in by_run[0]) and all(0 <= k.example < 30 for k in by_run[1])


def test_label_queue_skips_what_was_labelled_and_is_the_same_for_the_same_person():
    sources = [Source("a", "mrpc", 5, 1, 2)]
    queue = label_queue(sources, set(), "ann", size=8)
    assert label_queue(sources, set(), "ann", size=8) == queue
    assert label_queue(sources, set(), "bob", size=8) != queue
    done = set(queue[:3])
    again = label_queue(sources, done, "ann", size=8)
    assert not done & set(again)
    everything = {MapKey("a", r, e, 0, h) for r in ("pretrained", "finetuned") for e in range(5) for h in range(2)}
    assert label_queue(sources, everything, "ann") == []


# -- the reader -----------------------------------------------------------------


def test_reader_reads_maps_tokens_and_classes(tmp_path):
    store = handmade_store(tmp_path / "s", n_examples=3, n_layers=2, n_heads=5)
    reader = Reader(store)
    runs = reader.runs()
    assert reader.default_run(runs) == "run-handmade0001"
    context = reader.context("run-handmade0001")
    assert (context.n_examples, context.n_layers, context.n_heads) == (3, 2, 5)
    assert context.tokens[0][0] == "[CLS]" and len(context.tokens[1]) == store.maps("run-handmade0001", "finetuned").lengths[1]
    both = reader.both("run-handmade0001", 2)
    assert np.array_equal(both["finetuned"], store.maps("run-handmade0001", "finetuned").example(2))
    assert reader.example("run-handmade0001", "finetuned", 2) is both["finetuned"]  # cached
    assert context.classes.describe("finetuned", 1, 1, 2) == [("rules", PATTERN_CLASSES[(1 + 2 + 1) % 5])]
    Labels(store).set("run-handmade0001", "finetuned", 1, 1, 2, "block", labeller="ann")
    assert ("ann", "block") in reader.context("run-handmade0001").classes.describe("finetuned", 1, 1, 2)


def test_reader_reports_missing_maps_per_model(tmp_path):
    store = handmade_store(tmp_path / "s", n_examples=2)
    store.catalog.delete("maps", "run-handmade0001-pretrained")
    both = Reader(store).both("run-handmade0001", 0)
    assert isinstance(both["pretrained"], str) and "no finished pretrained maps" in both["pretrained"]
    assert both["finetuned"].shape[0] == 2


def test_catalog_fingerprint_changes_when_a_part_is_written(tmp_path):
    store = handmade_store(tmp_path / "s", n_examples=2, with_analyses=False)
    before = store.catalog.fingerprint()
    assert before == store.catalog.fingerprint()
    write_analysis_rows(store, "run-handmade0001", "exp", "mrpc", 2, 5, 2)
    after = store.catalog.fingerprint()
    assert {t for t in after if after[t] != before[t]} == {
        "head_stats", "feature_attention", "cls_attention", "head_change", "map_classes", "class_shares",
        "relation_heads", "classifiers", "ablation", "ablation_seeds", "head_importance", "pruning"}
