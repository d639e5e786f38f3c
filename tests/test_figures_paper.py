"""`bertsecrets figures`: the paper's figures and tables from an analysed tiny store."""

from __future__ import annotations

import csv

from bertsecrets.cli import main


def test_every_figure_and_table_is_written(tiny_store, tmp_path, capsys):
    store, plan = tiny_store
    assert main(["figures", "mrpc", "--store", str(store.root), "--out", str(tmp_path)]) == 0
    folder = tmp_path / "mrpc"
    pngs = {p.name for p in folder.glob("*.png")}
    assert pngs >= {"fig2_patterns.png", "fig3_relations_spacy.png", "fig5_change.png", "fig6_features.png",
                    "fig6_features_difference.png", "fig7_cls.png", "table1.png"}
    ablation = {"fig8_heads_f1.png", "fig9_layers.png", "pruning.png"}  # bertsecrets/figures/ablation.py
    ablation |= {p for p in pngs if p.startswith("boundary_")}  # bertsecrets/figures/boundaries.py, when maps allow
    ablation |= {"norms_weight.png", "sinks.png", "families.png", "rollout.png"}  # bertsecrets/figures/beyond.py
    assert all(p.startswith("fig3_relations_") for p in pngs - ablation - {"fig2_patterns.png", "fig5_change.png",
               "fig6_features.png", "fig6_features_difference.png", "fig7_cls.png", "table1.png"})  # one per source
    assert all((folder / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (folder / p).stat().st_size > 5000 for p in pngs)
    change = list(csv.DictReader((folder / "head_change.csv").open()))
    assert len(change) == plan.model.n_layers * plan.model.n_heads
    assert {int(r["layer"]) for r in change} == set(range(1, plan.model.n_layers + 1))  # 1-indexed
    assert {int(r["head"]) for r in change} == set(range(1, plan.model.n_heads + 1))
    table1 = list(csv.reader((folder / "table1.csv").open()))
    assert table1[0][:3] == ["set-up", "f1 (%)", "accuracy (%)"] and len(table1) == 4
    assert table1[3][0] == "pretrained + fine-tuning" and table1[3][-2] == "87.9/82.3"


def test_one_figure_and_a_task_without_runs(tiny_store, tmp_path, capsys):
    store, _ = tiny_store
    assert main(["figures", "mrpc", "--only", "fig5", "--store", str(store.root), "--out", str(tmp_path)]) == 0
    assert [p.name for p in (tmp_path / "mrpc").iterdir()] == ["fig5_change.png"]
    assert main(["figures", "rte", "--store", str(store.root), "--out", str(tmp_path)]) == 2
    assert "bertsecrets analyze rte" in capsys.readouterr().out
