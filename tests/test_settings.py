"""Settings declared once: every setting has a CLI option, reaches the run record, and enters exactly its keys."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields, replace

import pytest

from bertsecrets.cli import build_parser, main
from bertsecrets.commands.ingest import GRID_OPTIONS, parse_seeds
from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import IngestSettings, columns, flag_of
from bertsecrets.ingest import plan as plan_module
from bertsecrets.ingest.plan import Compute, make_plan, resolve_compute, settings_of
from conftest import TINY_INGEST, write_mrpc, write_tiny_bert

NAMES = [f.name for f in fields(IngestSettings)]
META = {f.name: f.metadata for f in fields(IngestSettings)}


def _changed(name, tmp_path):
    """A value of ``name`` other than the tiny ingest's, and the same data where the setting is only a path."""
    if name == "data_dir":  # the same files in another folder
        return str(write_mrpc(tmp_path / "glue-copy", n_train=48, n_dev=24))
    if name == "model":  # another model (different weights)
        return str(write_tiny_bert(tmp_path / "other-bert", seed=1))
    if name == "task":
        return "rte"
    return {
        "store": str(tmp_path / "elsewhere"), "seed": 7, "learning_rate": 3e-4, "batch_size": 8, "epochs": 2,
        "warmup_ratio": 0.2, "weight_decay": 0.0, "max_length": 64, "max_examples": 5, "max_train_examples": 20,
        "precision": "float16", "weights": "float16", "setups": ("finetuned",), "skip_bad_rows": True, "device": "cuda",
        "eval_batch_size": 4, "extract_batch_size": 2, "checkpoint_seconds": 1.0,
    }[name]


@pytest.fixture
def base(tiny_bert, tiny_glue):
    return IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), **TINY_INGEST)


def test_every_setting_is_an_option_of_ingest_with_its_help():
    parser, _ = build_parser()
    ingest = parser._subparsers._group_actions[0].choices["ingest"]
    options = {a.dest: a for a in ingest._actions}
    for name in NAMES:
        dest = GRID_OPTIONS.get(name, name)  # the settings a grid varies take lists
        assert dest in options, f"{name} has no option"
        assert META[name]["help"] and META[name]["help"].split(" (")[0] in options[name if dest == name else dest].help
        if name != "task":
            assert flag_of(name) in options[dest].option_strings
    default = parser.parse_args(["ingest", "mrpc"])
    plain = [n for n in NAMES if n not in GRID_OPTIONS]
    assert {n: getattr(default, n) for n in plain} == {n: getattr(IngestSettings(task="mrpc"), n) for n in plain}
    assert (default.tasks, parse_seeds(default.seeds), default.max_train_examples) == (["mrpc"], [0], None)


@pytest.mark.parametrize("name", NAMES)
def test_each_setting_enters_exactly_its_declared_keys(name, base, tmp_path, monkeypatch):
    # A GPU where none is: the device setting resolves to CUDA in bfloat16 (a test of the key, not of CUDA).
    monkeypatch.setattr(plan_module, "resolve_compute",
                        lambda device: Compute("cpu", "float32") if device in ("cpu", "auto") else Compute("cuda", "bfloat16"))
    if name == "task":
        shutil.copytree(base.data_dir, tmp_path / "glue", dirs_exist_ok=True)
        (tmp_path / "glue" / "RTE").mkdir()
        for split in ("train", "dev"):
            (tmp_path / "glue" / "RTE" / f"{split}.tsv").write_text(
                "index\tsentence1\tsentence2\tlabel\n0\tThe cat sat.\tA cat sat.\tentailment\n"
                "1\tHe sold it.\tHe bought it.\tnot_entailment\n")
        base = replace(base, data_dir=str(tmp_path / "glue"))
    before = make_plan(base)
    after = make_plan(replace(base, **{name: _changed(name, tmp_path)}))
    key = META[name]["key"]
    trained = [s for s in before.run_ids if s != "no_finetuning"]
    runs_changed = {s for s in before.run_ids if before.run_ids[s] != after.run_ids[s]}
    maps_changed = {r for r in before.map_ids if before.map_ids[r] != after.map_ids[r]}
    if key is None:
        assert META[name]["why"]
        assert not runs_changed and not maps_changed and before.experiment_id == after.experiment_id
    elif key == "run":
        assert runs_changed == set(before.run_ids) and "finetuned" in maps_changed
        if name not in ("seed",):  # the pretrained maps are shared by all seeds
            assert maps_changed == {"pretrained", "finetuned"}
    elif key == "trained":
        assert runs_changed == set(trained) and maps_changed == {"finetuned"}
    elif key == "maps":
        assert not runs_changed and maps_changed == {"pretrained", "finetuned"}
    else:
        pytest.fail(f"unknown key {key!r}")


def test_every_setting_reaches_the_run_record(tiny_store):
    store, plan = tiny_store
    for setup, run_id in plan.run_ids.items():
        record = store.run(run_id)
        saved = json.loads(record["settings_json"])
        for name in NAMES:
            value = getattr(plan.settings, name)
            assert saved[name] == (list(value) if isinstance(value, tuple) else value), name
        for name, _ in columns():
            expected = getattr(plan.settings, name)
            if setup == "no_finetuning" and META[name]["key"] == "trained":
                expected = META[name]["untrained"]
            assert record[name] == expected, (setup, name)
        assert (record["device"], record["dtype"]) == ("cpu", "float32")
        # The record gives back the settings that made it, and so the same run.
        assert settings_of(record).values() == plan.settings.values()
    again = make_plan(settings_of(store.run(plan.run_ids["finetuned"])))
    assert again.run_ids == plan.run_ids and again.map_ids == plan.map_ids


def test_cpu_compute_needs_no_gpu_and_auto_finds_none_here(monkeypatch):
    assert resolve_compute("cpu") == Compute("cpu", "float32")
    import torch

    if not torch.cuda.is_available():
        assert resolve_compute("auto") == Compute("cpu", "float32")
    # Without any GPU driver the fast path answers as torch would: no GPU.
    if not any(os.path.exists(p) for p in plan_module.GPU_DRIVER_PATHS):
        assert not torch.cuda.is_available()
    # With a driver present, torch decides (here: none usable, so the CPU).
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/dev/nvidiactl" or real_exists(p))
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: asked.append(1) or False)
    assert resolve_compute("auto") == Compute("cpu", "float32") and asked


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "--seed must be a whole number from 0 to 4294967295"),
    ("--seed", str(2**32), "--seed must be a whole number from 0 to 4294967295"),
    ("--weight-decay", "nan", "--weight-decay must be a number, 0 or more"),
    ("--checkpoint-every", "nan", "--checkpoint-every must be a number of seconds"),
    ("--lr", "inf", "--lr must be between 0 and 1"),
    ("--warmup", "nan", "--warmup must be a fraction"),
    ("--batch-size", "0", "--batch-size must be a positive whole number"),
    ("--setups", "finetuned,bogus", "--setups takes a comma-separated subset"),
])
def test_bad_settings_are_refused_before_anything_is_made(option, value, message, tmp_path, tiny_glue, capsys):
    store = tmp_path / "store"
    assert main(["ingest", "mrpc", "--store", str(store), "--data-dir", str(tiny_glue), option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not store.exists()


def test_settings_check_types_as_well():
    with pytest.raises(UserError, match="--seed"):
        IngestSettings(task="mrpc", seed=True)
    assert IngestSettings(task="mrpc", setups="finetuned, random_init").setups == ("finetuned", "random_init")


def test_runs_stored_before_the_weights_setting_count_as_float32():
    from bertsecrets.core.settings import stored_weights

    assert stored_weights({"settings_json": '{"seed": 0, "precision": "uint8"}'}) == "float32"  # an older run
    assert stored_weights({"settings_json": '{"seed": 0, "weights": "float16"}'}) == "float16"
    assert stored_weights({"settings_json": None}) == "float32"
    assert stored_weights({"settings_json": "not json"}) == "float32"
