"""`bertsecrets figures --only`: the names pick among every figure the command draws, per task and across tasks."""

from __future__ import annotations

import matplotlib
import pytest

from bertsecrets.cli import build_parser, main
from bertsecrets.figures import across_figures, all_figures

matplotlib.use("Agg")

TASKS = ["mrpc", "sts-b"]


def files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_cross_task_name_draws_that_figure_alone(task_grid_store, tmp_path):
    store = task_grid_store
    draw = dict((name, f) for name, f, _ in across_figures())["classes"]
    (tmp_path / "by-hand").mkdir()
    expected = sorted(f"tasks/{p.name}" for p in draw(store, tmp_path / "by-hand", TASKS))
    assert expected  # the store has what the figure needs
    out = tmp_path / "figures"
    assert main(["figures", *TASKS, "--only", "classes", "--store", str(store.root), "--out", str(out)]) == 0
    assert files(out) == expected
    assert sorted(p.name for p in out.iterdir()) == ["tasks"]  # no per-task folder either


def test_a_per_task_name_draws_no_cross_task_figure(task_grid_store, tmp_path):
    store = task_grid_store
    draw = dict(all_figures())["fig2"]
    (tmp_path / "by-hand").mkdir()
    expected = sorted(f"{task}/{p.name}" for task in TASKS for p in draw(store, task, tmp_path / "by-hand"))
    assert expected
    out = tmp_path / "figures"
    assert main(["figures", *TASKS, "--only", "fig2", "--store", str(store.root), "--out", str(out)]) == 0
    assert files(out) == expected
    assert not (out / "tasks").exists()


def test_an_unknown_name_is_one_line_naming_every_figure(task_grid_store, tmp_path, capsys):
    out = tmp_path / "figures"
    code = main(["figures", *TASKS, "--only", "fig2,nope", "--store", str(task_grid_store.root), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and err.startswith("error: unknown figure(s) nope; choose from ")
    named = err.split("choose from ", 1)[1].split(", ")
    assert sorted(named) == sorted({n for n, _ in all_figures()} | {n for n, _, _ in across_figures()})
    assert not out.exists()


def test_a_cross_task_name_wants_two_tasks(task_grid_store, tmp_path, capsys):
    out = tmp_path / "figures"
    code = main(["figures", "mrpc", "--only", "classes,heads", "--store", str(task_grid_store.root), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err == "error: classes, heads are drawn across tasks only: name two or more tasks"
    assert not out.exists()
    # beside a per-task name too: refused, not silently left out
    code = main(["figures", "mrpc", "--only", "fig2,classes", "--store", str(task_grid_store.root), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err == "error: classes is drawn across tasks only: name two or more tasks"
    assert not out.exists()


def test_help_names_every_figure(capsys):
    parser, _ = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["figures", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    per_task, across = shown.split("Per task: ", 1)[1].split(". Across tasks: ")
    assert per_task.split(", ") == [n for n, _ in all_figures()]
    assert across.split(", ") == [n for n, _, _ in across_figures()]
