"""The browser across tasks and seeds: the Tasks screen, the task and seed keys, the grid's mean and spread over seeds.

The store is one grid ingest of two tasks x two seeds with the tiny BERT
(`task_grid_store`); the expected numbers are read from the catalog with SQL
here, not through the browser's reader.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from textual.widgets import DataTable

from bertsecrets.store import findings as F
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.reader import Reader, RunStats
from bertsecrets.tui.screens.tasks import sign
from bertsecrets.tui.stats import STATS, points, seed_grid, short
from bertsecrets.tui.widgets.grid import HeadGrid
from bertsecrets.tui.widgets.keybar import KeyBar
from conftest import settle, text_of
from test_tui_snapshots import keys

LAYERS, HEADS = 3, 4  # the tiny BERT's


def finetuned(store) -> dict[tuple[str, int], str]:
    """(task, seed) -> the fine-tuned run's id."""
    return {(r["task"], r["seed"]): r["run_id"]
            for r in store.rows("SELECT run_id, task, seed FROM runs WHERE setup = 'finetuned'")}


@contextlib.asynccontextmanager
async def browsing(store, task: str, seed: int, size: tuple[int, int] = (120, 40)):
    """The browser on ``store``, settled, with the fine-tuned run of ``task`` and ``seed`` selected:
    (app, pilot, the fine-tuned runs by (task, seed))."""
    runs = finetuned(store)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.select(run_id=runs[(task, seed)])
        yield app, pilot, runs


def head_grid(store, sql: str, run_id: str) -> np.ndarray:
    """[layer, head] of a query's (layer, head, value) rows for one run, NaN where it has none."""
    out = np.full((LAYERS, HEADS), np.nan)
    for row in store.rows(sql, [run_id]):
        out[row["layer"], row["head"]] = row["value"]
    return out


ENTROPY = "SELECT layer, head, entropy AS value FROM head_stats WHERE run_id = ? AND role = 'finetuned'"
PEARSON = "SELECT layer, head, delta AS value FROM ablation WHERE run_id = ? AND kind = 'head' AND metric = 'pearson'"
F1 = "SELECT layer, head, delta AS value FROM ablation WHERE run_id = ? AND kind = 'head' AND metric = 'f1'"


# -- the mean and spread over seeds, without an app ------------------------------------------------


def stats_of(seed: int, entropy: dict[tuple[int, int], float], effects: dict[tuple[int, int], tuple]) -> RunStats:
    """A run of 2 layers x 2 heads with hand-made entropies and disabling effects (delta, ci_low, ci_high)."""
    tables = {
        "head_stats": [{"role": "finetuned", "layer": l, "head": h, "entropy": v} for (l, h), v in entropy.items()],
        "ablation": [{"kind": "head", "metric": "f1", "layer": l, "head": h, "delta": d, "ci_low": lo, "ci_high": hi}
                     for (l, h), (d, lo, hi) in effects.items()],
        "class_shares": [{"role": "finetuned", "source": "rules", "layer": l, "head": h, "label": "block", "share": 1.0}
                         for l in range(2) for h in range(2)],
    }
    return RunStats(f"run-{seed}", "mrpc", 2, 2, tables, [], [], seed, "MRPC")


def test_seed_grid_takes_each_heads_mean_and_spread_over_the_seeds_that_have_it():
    entropy = next(s for s in STATS if s.key == "entropy")
    ablation = next(s for s in STATS if s.key == "ablation")
    runs = [
        stats_of(0, {(0, 0): 1.0, (0, 1): 2.0, (1, 0): 3.0, (1, 1): 4.0},
                 {(0, 0): (0.02, 0.01, 0.03), (0, 1): (-0.01, -0.03, 0.01), (1, 0): (-0.05, -0.08, -0.02)}),
        stats_of(1, {(0, 0): 3.0, (0, 1): 2.0, (1, 0): 5.0},  # head (1, 1) missing in this seed
                 {(0, 0): (0.04, 0.02, 0.06), (0, 1): (0.01, 0.005, 0.02), (1, 0): (-0.01, -0.03, 0.01)}),
    ]
    mean = seed_grid(entropy, runs, None, "finetuned", "mean")
    assert mean.seeds == [0, 1]
    assert np.allclose(mean.grid.values, [[2.0, 2.0], [4.0, 4.0]])  # (1, 1): the one seed that has it
    assert mean.grid.note.startswith("mean over 2 seeds (0, 1) of: ")
    spread = seed_grid(entropy, runs, None, "finetuned", "sd")
    assert np.allclose(spread.grid.values[0], [np.sqrt(2.0), 0.0]) and spread.grid.values[1, 0] == pytest.approx(np.sqrt(2))
    assert np.isnan(spread.grid.values[1, 1])  # one value has no spread
    assert spread.grid.note.startswith("standard deviation over 2 seeds (0, 1) of: ")
    effects = seed_grid(ablation, runs, "f1", "finetuned", "mean")
    assert effects.grid.kind == "div" and effects.grid.high == pytest.approx(0.03) == -effects.grid.low
    # Marked where every seed's interval excludes 0: only head (0, 0).
    assert effects.grid.marks.tolist() == [[True, False], [False, False]]
    assert "in every seed" in effects.grid.note
    assert seed_grid(ablation, runs, "f1", "finetuned", "sd").grid.fmt(0.012) == "1.2"  # a spread has no sign
    classes = seed_grid(STATS[0], runs, "dominant", "finetuned", "mean")
    assert classes.grid is None and "no mean over seeds" in classes.why
    assert seed_grid(ablation, runs, "accuracy", "finetuned", "mean").grid is None  # no seed has that metric


def test_the_readers_seed_grid_is_numpys_mean_of_the_seeds_grids(task_grid_store):
    store = task_grid_store
    runs = finetuned(store)
    reader = Reader(store)
    entropy = next(s for s in STATS if s.key == "entropy")
    ablation = next(s for s in STATS if s.key == "ablation")
    for task, sql, stat, option in (("sts-b", ENTROPY, entropy, None), ("sts-b", PEARSON, ablation, "pearson"),
                                    ("mrpc", ENTROPY, entropy, None), ("mrpc", F1, ablation, "f1")):
        seeds = reader.seed_stats(runs[(task, 1)])
        assert seeds.seeds == [0, 1] and seeds.run_id == runs[(task, 1)]
        per_seed = np.stack([head_grid(store, sql, runs[(task, s)]) for s in (0, 1)])
        assert np.isfinite(per_seed).all()
        mean = seed_grid(stat, seeds.stats, option, "finetuned", "mean")
        assert np.allclose(mean.grid.values, per_seed.mean(axis=0)) and np.allclose(mean.values, per_seed)
        spread = seed_grid(stat, seeds.stats, option, "finetuned", "sd")
        if spread.grid is not None:  # a statistic the same in both seeds (MRPC's all-zero f1 effects) has none
            assert np.allclose(spread.grid.values, per_seed.std(axis=0, ddof=1))
        else:
            assert np.allclose(per_seed.std(axis=0), 0.0)
    # Any set-up's run stands for its seed: the untrained run of seed 1 compares the same fine-tuned runs.
    untrained = store.rows("SELECT run_id FROM runs WHERE task = 'sts-b' AND seed = 1 AND setup = 'no_finetuning'")
    assert [r["run_id"] for r in F.seed_runs(store, untrained[0]["run_id"])] == [runs[("sts-b", 0)], runs[("sts-b", 1)]]


# -- the grid screen's mean and spread ------------------------------------------------------------


async def test_v_shows_the_grids_mean_and_spread_over_the_seeds(task_grid_store):
    store = task_grid_store
    runs = finetuned(store)
    per_seed = np.stack([head_grid(store, ENTROPY, runs[("sts-b", s)]) for s in (0, 1)])
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.select(run_id=runs[("sts-b", 0)])
        await settle(pilot, "g")
        while app.screen.stat.key != "entropy":
            await settle(pilot, "c")
        await settle(pilot, "down", "right", "right")  # layer 2, head 3
        widget = app.screen.query_one(HeadGrid)
        assert np.allclose(widget.grid.values, per_seed[0])
        assert "seed 0" in text_of(app, "#heads-context") and runs[("sts-b", 0)] in text_of(app, "#heads-context")

        await settle(pilot, "v")
        assert np.allclose(widget.grid.values, per_seed.mean(axis=0))
        assert text_of(app, "#heads-legend").startswith("mean over 2 seeds (0, 1) of: attention entropy")
        assert "mean over 2 seeds" in text_of(app, "#heads-context")
        details = text_of(app, "#heads-details")
        assert f"entropy (mean): {short(per_seed[:, 1, 2].mean())}" in details
        assert f"seeds: 0 {short(per_seed[0, 1, 2])}, 1 {short(per_seed[1, 1, 2])}" in details
        assert "this run (seed 0)" in details

        await settle(pilot, "v")
        assert np.allclose(widget.grid.values, per_seed.std(axis=0, ddof=1))
        assert text_of(app, "#heads-legend").startswith("standard deviation over 2 seeds (0, 1) of: ")

        await settle(pilot, "S")  # the other seed keeps the view over seeds: the same configuration
        assert app.selection.run_id == runs[("sts-b", 1)]
        assert np.allclose(widget.grid.values, per_seed.std(axis=0, ddof=1))
        await settle(pilot, "v")
        assert np.allclose(widget.grid.values, per_seed[1]) and "seed 1" in text_of(app, "#heads-context")


# -- the task and seed keys -----------------------------------------------------------------------


async def test_task_and_seed_keys_go_to_the_compared_runs_keeping_layer_head_and_input(task_grid_store):
    store = task_grid_store
    async with browsing(store, "mrpc", 1, size=(100, 30)) as (app, pilot, runs):
        await settle(pilot, "m", "n", "n", "right_square_bracket", "right_square_bracket", "right_curly_bracket")
        where = (app.selection.example, app.selection.layer, app.selection.head)
        assert where == (2, 1, 2)
        await settle(pilot, "T")  # the next task, the same seed
        assert app.selection.run_id == runs[("sts-b", 1)]
        assert (app.selection.example, app.selection.layer, app.selection.head) == where
        assert text_of(app, "#map-context").startswith("STS-B* · seed 1 · input 3/8")
        heatmap = app.screen.query_one("#finetuned")
        assert np.allclose(heatmap.matrix, store.maps(runs[("sts-b", 1)], "finetuned").head(2, 1, 2))
        await settle(pilot, "S")  # seeds wrap round: 1 -> 0
        assert app.selection.run_id == runs[("sts-b", 0)] and "seed 0" in text_of(app, "#map-context")
        await settle(pilot, "S", "T")
        assert app.selection.run_id == runs[("mrpc", 1)]
        assert (app.selection.example, app.selection.layer, app.selection.head) == where

        await settle(pilot, "r")  # on the Runs screen, from the highlighted run; its cursor follows
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(runs[("mrpc", 0)]))
        await settle(pilot, "T")
        assert app.selection.run_id == runs[("sts-b", 0)]
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == runs[("sts-b", 0)]
        bar = app.screen.query_one(KeyBar)
        assert "T/S task/seed" in [f"{i.shown} {i.description}" for i in bar.items()]


async def test_just_after_the_seed_key_the_top_lines_name_the_new_run_not_the_task_and_sizes_of_the_old(
        task_grid_store):
    """Until the new run's context is read, the Map, Model and Sentence screens hold the old run's: their top lines
    must not give its task, seed, sizes or sentence as the new run's."""
    import threading

    async with browsing(task_grid_store, "mrpc", 0) as (app, pilot, runs):
        reader, release = app.reader, threading.Event()
        context = reader.context

        def slow(run_id):  # the other seed's context waits until the test lets it go
            if run_id == runs[("mrpc", 1)]:
                release.wait(10)
            return context(run_id)

        reader.context = slow
        for mode, line, more in (("m", "#map-context", " · layer 2 · head 3"),
                                 ("o", "#model-context", " · finetuned"),
                                 ("w", "#sentence-context", "")):
            release.clear()
            app.select(run_id=runs[("mrpc", 0)], example=1, layer=1, head=2, role="finetuned")
            await settle(pilot, mode)
            assert text_of(app, line).startswith("MRPC · seed 0 · input 2/"), mode
            await pilot.press("S")
            for _ in range(20):
                await pilot.pause(0.05)
                if app.selection.run_id == runs[("mrpc", 1)]:
                    break
            await pilot.pause(0.1)
            assert app.selection.run_id == runs[("mrpc", 1)]
            assert text_of(app, line) == f"run {runs[('mrpc', 1)]} · input 2{more} · reading…", mode
            if mode == "o":
                assert text_of(app, "#model-text") == ""
            release.set()
            await settle(pilot)
            assert text_of(app, line).startswith("MRPC · seed 1 · input 2/"), mode


async def test_task_and_seed_keys_on_a_store_of_one_task_and_seed_say_why_nothing_moves(tiny_store):
    store, plan = tiny_store
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "enter")
        before = app.selection.run_id
        await settle(pilot, "S")
        await settle(pilot, "T")
        assert app.selection.run_id == before
        said = [n.message for n in app._notifications]
        assert "MRPC has one seed of this configuration (seed 0): `bertsecrets ingest mrpc --seeds 0,1,2` adds more" in said
        assert "MRPC is the only task with finished fine-tuned runs" in said


# -- the Tasks screen -----------------------------------------------------------------------------


async def test_tasks_screen_shows_every_claim_table_and_head_effect(task_grid_store):
    store = task_grid_store
    runs = finetuned(store)
    found = F.findings(store)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "k")
        assert app.current_mode == "tasks"
        assert text_of(app, "#tasks-context").startswith("2 tasks (MRPC, STS-B*) · seeds 0, 1 · 14 claims")
        assert "STS-B*: fine-tuned on the first 24 training examples only" in text_of(app, "#tasks-notes")
        table = app.screen.query_one("#tasks-claims", DataTable)
        assert table.row_count == len(found.claims)
        for i, claim in enumerate(found.claims):
            row = table.get_row_at(i)
            assert row[0].plain.rstrip("…") in f"{claim.where}: {claim.statement}"
            for task, cell in zip(("mrpc", "sts-b"), row[1:3]):
                expected = sign(claim.cells[task].verdict)[0] if task in claim.cells else ""
                assert cell.plain == expected, (claim.statement, task)
            assert row[3].plain.startswith(sign(claim.verdict)[0])
        await settle(pilot, "down", "down", "down")
        details = text_of(app, "#tasks-claim")
        claim = found.claims[3]
        assert claim.statement in " ".join(details.split()) and f"verdict: {sign(claim.verdict)[0]} {claim.verdict}" in details

        await settle(pilot, "x", "x")  # the third cross-task table
        assert app.screen.query_one("#tasks-tabs").active == "tab-tables"
        section = found.sections[2]
        assert text_of(app, "#tasks-section-title").startswith(section.title)
        shown = app.screen.query_one("#tasks-section", DataTable)
        assert [c.plain for c in shown.get_row_at(0)] == section.rows[0]

        await settle(pilot, "right_square_bracket")  # the head effects
        means = {task: np.stack([head_grid(store, sql, runs[(task, s)]) for s in (0, 1)]).mean(axis=0)
                 for task, sql in (("mrpc", F1), ("sts-b", PEARSON))}
        span = max(np.abs(m).max() for m in means.values())
        for task, mean in means.items():
            grid = app.screen.query_one(f"#tasks-grid-{task}", HeadGrid).grid
            assert np.allclose(grid.values, mean)
            assert (grid.low, grid.high) == pytest.approx((-span, span))  # one colour scale for every task
        await settle(pilot, "right", "down")
        status = text_of(app, "#tasks-heads-status")
        assert status.startswith("layer 2 head 2")
        assert f"STS-B* {points(means['sts-b'][1, 1])}" in status

        app.screen.query_one("#tasks-grid-sts-b", HeadGrid).focus()
        seed = next(r["seed"] for r in store.rows("SELECT seed FROM runs WHERE run_id = ?", [app.selection.run_id]))
        await settle(pilot, "enter")  # that task's run (the selected seed) on the Ablation screen, at that head
        assert app.current_mode == "ablation"
        assert app.selection.run_id == runs[("sts-b", seed)] and (app.selection.layer, app.selection.head) == (1, 1)


# -- snapshots ------------------------------------------------------------------------------------


def ready(*pressed: str, run: tuple[str, int] | None = None):
    """Choose ``run`` (task, seed), then press keys, letting every read finish after each."""
    async def go(pilot) -> None:
        await settle(pilot)
        if run is not None:
            pilot.app.select(run_id=finetuned(pilot.app.store)[run])
        await keys(*pressed)(pilot)
    return go


@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=["80x24", "60x20"])
@pytest.mark.parametrize("name,pressed", [
    ("tasks_claims", ("k", "down", "down", "down")),
    ("tasks_heads", ("k", "right_square_bracket", "right_square_bracket", "right", "down")),
    ("grid_seed_mean", ("g", "c", "c", "c", "v", "down", "right")),
    ("grid_seed_spread", ("g", "c", "c", "c", "v", "v", "down", "right")),
])
def test_snapshots(snap_compare, task_grid_store, name, pressed, size):
    app = BrowseApp(task_grid_store, truecolor=False)
    assert snap_compare(app, terminal_size=size, run_before=ready(*pressed, run=("sts-b", 0)))


def test_the_tasks_screen_follows_every_table_its_findings_read(task_grid_store, monkeypatch):
    """The screen reads the findings again when one of its tables changes: every table they read must be one."""
    import re

    from bertsecrets.store.schema import TABLES as ALL
    from bertsecrets.tui.reader import Reader
    from bertsecrets.tui.screens.tasks import TasksScreen

    store = task_grid_store
    read: set[str] = set()
    query = type(store.catalog).query

    def spy(catalog, sql, params=None):
        read.update(t for t in re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)", sql, flags=re.I) if t in ALL)
        return query(catalog, sql, params)

    monkeypatch.setattr(type(store.catalog), "query", spy)
    found = Reader(store).task_findings()
    assert found.findings.claims and "norm_head_stats" in read  # the norms' claims were computed
    assert read <= set(TasksScreen.DEPENDS), sorted(read - set(TasksScreen.DEPENDS))
