"""The pictures of each pattern-class threshold: which maps they pick, and the PNGs from a store."""

from __future__ import annotations

import numpy as np

from bertsecrets.cli import main
from bertsecrets.figures import boundaries as FB
from bertsecrets.store.store import utcnow
from test_tui_stores import handmade_store

BY_NAME = {b.name: b for b in FB.BOUNDARIES}


def test_pick_takes_the_maps_nearest_each_step_from_the_threshold_one_per_head():
    rows = [  # (layer, head, V, D, label)
        (0, 0, 0.500, 0.1, "vertical"), (0, 0, 0.502, 0.1, "vertical"), (0, 1, 0.521, 0.1, "vertical"),
        (0, 2, 0.548, 0.1, "vertical"), (0, 3, 0.700, 0.1, "vertical"),
        (1, 0, 0.499, 0.1, "heterogeneous"), (1, 1, 0.481, 0.1, "heterogeneous"), (1, 2, 0.450, 0.1, "heterogeneous"),
        (1, 3, 0.499, 0.1, "diagonal"),  # not the class on the other side of this threshold
        (1, 4, 0.4995, 0.28, "heterogeneous"),  # D near vertical+diagonal's threshold: not a clean case
    ]
    where = {"example": np.arange(len(rows)), "layer": np.array([r[0] for r in rows]),
             "head": np.array([r[1] for r in rows]), "label": np.array([r[4] for r in rows], dtype=object)}
    nan = np.full(len(rows), np.nan)
    m = {"V": np.array([r[2] for r in rows]), "D": np.array([r[3] for r in rows]), "B": nan, "S": nan,
         "two": np.zeros(len(rows), dtype=bool)}
    inside, outside = FB.pick(BY_NAME["vertical"], where, m)
    assert inside == [0, 2, 3]  # nearest 0.5, then 0.52 and 0.55, each from another head (row 1 shares row 0's)
    assert outside == [5, 6, 7]
    assert FB.pick(BY_NAME["vertical"], where, m, steps=(0.0,)) == ([0], [5])
    # Block boundaries need two sentences: these inputs have one, so there is nothing to show.
    assert FB.pick(BY_NAME["block_spread"], where, m) == ([], [])


def test_masses_in_titles_are_cut_so_a_map_below_a_threshold_never_shows_it():
    assert FB._cut(0.49996) == "0.499" and FB._cut(0.5) == "0.500" and FB._cut(0.61) == "0.610"


# (V, D, B, S, label) of each head of a 2 x 5 model: one clean case on each side of each threshold.
CASES = [
    (0.51, 0.1, 0.5, 0.9, "vertical"), (0.49, 0.1, 0.5, 0.9, "heterogeneous"),
    (0.1, 0.41, 0.9, 0.2, "diagonal"), (0.1, 0.39, 0.9, 0.2, "heterogeneous"),
    (0.31, 0.6, 0.9, 0.2, "vertical+diagonal"), (0.29, 0.6, 0.9, 0.2, "diagonal"),
    (0.1, 0.1, 0.81, 0.9, "block"), (0.1, 0.1, 0.79, 0.9, "heterogeneous"),
    (0.1, 0.1, 0.9, 0.61, "block"), (0.1, 0.1, 0.9, 0.59, "heterogeneous"),
]
MASS = {"vertical": 0, "diagonal": 1, "vertical_diagonal": 0, "block_share": 2, "block_spread": 3}


def _with_masses(store, run_id: str, n_examples: int, masses: bool = True) -> None:
    """Rule labels with masses (each head one case of CASES, a little further from the threshold per input)."""
    rows = []
    for e in range(n_examples):
        for i, (v, d, b, s, label) in enumerate(CASES):
            values = [v, d, b, s]
            j = MASS[FB.BOUNDARIES[i // 2].name]
            values[j] += 0.001 * e * (1 if i % 2 == 0 else -1)
            for role in ("pretrained", "finetuned"):
                rows.append({"run_id": run_id, "role": role, "example": e, "layer": i // 5, "head": i % 5,
                             "source": "rules", "label": label, "confidence": 0.1,
                             **(dict(zip(("vertical_mass", "diagonal_mass", "block_share", "block_spread"), values))
                                if masses else {})})
    store.catalog.write("map_classes", run_id, rows)
    store.catalog.write("analyses", run_id, [{"run_id": run_id, "step": "maps", "key": "an-test", "status": "done",
                                              "seconds": 0.0, "created_at": utcnow()}])


def test_the_boundary_figures_of_a_store_show_the_nearest_maps_and_stay_small(tmp_path, capsys):
    store = handmade_store(tmp_path / "s", n_examples=3, n_layers=2, n_heads=5)
    _with_masses(store, "run-handmade0001", 3)
    where, m = FB.masses(store, "run-handmade0001")
    for i, b in enumerate(FB.BOUNDARIES):
        inside, outside = FB.pick(b, where, m)
        # One head per side here, so one map each: the input nearest the threshold (input 0).
        assert [(where["layer"][r] * 5 + where["head"][r], where["example"][r]) for r in inside] == [(2 * i, 0)], b.name
        assert [(where["layer"][r] * 5 + where["head"][r], where["example"][r]) for r in outside] == [(2 * i + 1, 0)]
    out = tmp_path / "figures"
    assert main(["figures", "mrpc", "--only", "boundaries", "--store", str(store.root), "--out", str(out)]) == 0
    written = sorted(p.name for p in (out / "mrpc").iterdir())
    assert written == sorted(f"boundary_{b.name}.png" for b in FB.BOUNDARIES)
    for name in written:
        data = (out / "mrpc" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 2_000 < len(data) < 80_000, name


def test_rule_labels_without_masses_ask_for_a_new_analysis(tmp_path, capsys):
    store = handmade_store(tmp_path / "s", n_examples=2, n_layers=2, n_heads=5)
    _with_masses(store, "run-handmade0001", 2, masses=False)  # as an older bertsecrets wrote them
    assert main(["figures", "mrpc", "--only", "boundaries", "--store", str(store.root), "--out", str(tmp_path)]) == 2
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "older bertsecrets" in out and "bertsecrets analyze run-handmade0001" in out
