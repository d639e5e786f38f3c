"""The ingest end to end: the three set-ups, caching, resuming after kill -9, bad input, real MRPC."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from bertsecrets.cli import main
from bertsecrets.core.errors import UserError
from bertsecrets.ingest.models import resolve_model
from bertsecrets.core.settings import IngestSettings
from bertsecrets.ingest.pipeline import ingest
from bertsecrets.ingest.plan import make_plan
from bertsecrets.store import Store
from bertsecrets.store.check import check_store
from tests.conftest import TINY_INGEST, write_tiny_bert

ROOT = Path(__file__).resolve().parent.parent


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_tiny_ingest_holds_everything_the_catalog_promises(tiny_store):
    store, plan = tiny_store
    runs = {r["setup"]: r for r in store.rows("SELECT * FROM runs")}
    assert set(runs) == {"finetuned", "random_init", "no_finetuning"}
    assert all(r["status"] == "done" for r in runs.values())
    assert len({r["experiment_id"] for r in runs.values()}) == 1
    ft = runs["finetuned"]
    assert (ft["task"], ft["n_layers"], ft["n_heads"], ft["epochs"], ft["seed"]) == ("mrpc", 3, 4, 1, 0)
    assert runs["no_finetuning"]["epochs"] == 0 and runs["no_finetuning"]["learning_rate"] is None
    for r in runs.values():
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["f1"] <= 1
        assert json.loads(r["metrics_json"]) == {"accuracy": r["accuracy"], "f1": r["f1"]}
        rows = store.rows("SELECT label, prediction, correct FROM examples WHERE run_id = ?", [r["run_id"]])
        assert len(rows) == r["dev_examples"] == 24
        assert np.isclose(np.mean([x["correct"] for x in rows]), r["accuracy"])
    assert store.has_model(ft["run_id"]) and store.has_model(runs["random_init"]["run_id"])
    # Tokens and maps agree on every example's length, and the maps are real attention.
    lengths = store.rows("SELECT example, count(*) AS n FROM tokens WHERE run_id = ? GROUP BY example ORDER BY example", [ft["run_id"]])
    assert [x["example"] for x in lengths] == list(range(12))
    for role in ("pretrained", "finetuned"):
        reader = store.maps(ft["run_id"], role)
        assert reader.lengths.tolist() == [x["n"] for x in lengths]
        example = reader.example(3)
        np.testing.assert_allclose(example.sum(-1), 1, atol=example.shape[-1] / 510)
    assert not np.allclose(store.maps(ft["run_id"], "pretrained").example(0), store.maps(ft["run_id"], "finetuned").example(0))
    tokens = store.rows("SELECT token, segment, word, char_start, char_end FROM tokens WHERE run_id = ? AND example = 0 ORDER BY position", [ft["run_id"]])
    text_a = store.rows("SELECT text_a FROM examples WHERE run_id = ? AND example = 0", [ft["run_id"]])[0]["text_a"]
    assert tokens[0]["token"] == "[CLS]" and tokens[0]["word"] is None
    first = tokens[1]
    assert text_a[first["char_start"]:first["char_end"]].lower() == first["token"]
    assert check_store(store, deep=True) == ([], [])


def test_the_same_ingest_again_does_nothing(tiny_store, tiny_bert, tiny_glue):
    store, plan = tiny_store
    before = snapshot(store.root)
    out = quiet()
    settings = IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(store.root), **TINY_INGEST)
    ingest(settings, out)
    assert "nothing to do" in out.file.getvalue()
    assert snapshot(store.root) == before


def test_a_changed_setting_is_a_new_run_beside_the_old(tiny_store, tiny_bert, tiny_glue, tmp_path):
    store, plan = tiny_store
    base = dict(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), **TINY_INGEST)
    same = make_plan(IngestSettings(**base))
    assert same.run_ids == plan.run_ids and same.map_ids == plan.map_ids
    changed = make_plan(IngestSettings(**{**base, "seed": 1}))
    assert not set(changed.run_ids.values()) & set(plan.run_ids.values())
    assert changed.map_ids["pretrained"] == plan.map_ids["pretrained"]  # the pretrained maps do not depend on the seed
    assert make_plan(IngestSettings(**{**base, "precision": "float16"})).run_ids == plan.run_ids  # same training
    assert make_plan(IngestSettings(**{**base, "precision": "float16"})).map_ids != plan.map_ids


def test_half_precision_weights_are_the_float32_run_rounded_and_the_run_computes_with_them(
        tiny_store, tiny_bert, tiny_glue, tmp_path):
    """--weights float16 stores the weights the float32 run would store, rounded, and scores with those."""
    from safetensors import safe_open

    from bertsecrets.core.tasks import get_task
    from bertsecrets.ingest import metrics
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.models import load_finetuned, load_tokenizer
    from bertsecrets.ingest.sweep import dev_split
    from bertsecrets.ingest.train import predict
    from bertsecrets.store import queries

    full_store, full_plan = tiny_store
    settings = IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(tmp_path / "s"),
                              setups=("finetuned",), weights="float16", **TINY_INGEST)
    plan = make_plan(settings)
    assert plan.run_ids["finetuned"] != full_plan.run_ids["finetuned"]
    ingest(settings, quiet())
    store = Store.open(tmp_path / "s")
    run_id = plan.run_ids["finetuned"]
    folder, full_folder = store.model_dir(run_id), full_store.model_dir(full_plan.run_ids["finetuned"])
    with safe_open(str(folder / "model.safetensors"), "pt") as half, \
            safe_open(str(full_folder / "model.safetensors"), "pt") as full:
        assert set(half.keys()) == set(full.keys())
        for name in full.keys():
            a, b = half.get_tensor(name), full.get_tensor(name)
            if b.is_floating_point():
                assert a.dtype == torch.float16 and torch.equal(a, b.half()), name
    # The stored predictions are those of the stored weights, read back.
    record = store.run(run_id)
    # A float16 run is another configuration than the float32 one, not another seed of it.
    from bertsecrets.core.settings import stored_weights
    from bertsecrets.store.findings import _configuration

    full_record = full_store.run(full_plan.run_ids["finetuned"])
    assert (stored_weights(record), stored_weights(full_record)) == ("float16", "float32")
    assert _configuration(record)[4] == "float16" and _configuration(full_record)[4] == "float32"
    model = load_finetuned(folder).eval()
    assert next(model.parameters()).dtype == torch.float32
    split = dev_split(store, record)
    logits = predict(model, encode(load_tokenizer(folder), split, int(record["max_length"])), torch.device("cpu"))
    task = get_task("mrpc")
    stored = [r["prediction"] for r in queries.examples(store, run_id, below=len(split.labels))]
    assert np.array_equal(metrics.predictions(task, logits), np.asarray(stored))


def test_training_resumes_to_the_same_weights(tiny_bert, tiny_glue, tmp_path):
    """Stopped after any step, fine-tuning continues from its checkpoint to bit-identical weights."""
    from bertsecrets.ingest.data import load_glue_dir
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.models import load_classifier, load_tokenizer
    from bertsecrets.core.tasks import get_task
    from bertsecrets.ingest.train import fine_tune

    data = load_glue_dir(get_task("mrpc"), tiny_glue)
    tokenizer = load_tokenizer(tiny_bert)
    enc = encode(tokenizer, data.train, 64)
    settings = IngestSettings(task="mrpc", learning_rate=1e-3, batch_size=8, epochs=2, seed=3, checkpoint_seconds=0)
    device = torch.device("cpu")

    reference = load_classifier(tiny_bert, 2, False, seed=3)
    fine_tune(reference, enc, data.train.labels, settings, device, tmp_path / "a.pt")

    class Stop(Exception):
        pass

    def stop_at(step):
        def hook(done, total, loss):
            if done == step:
                raise Stop
        return hook

    resumed = load_classifier(tiny_bert, 2, False, seed=3)
    with pytest.raises(Stop):
        fine_tune(resumed, enc, data.train.labels, settings, device, tmp_path / "b.pt", on_step=stop_at(5))
    resumed = load_classifier(tiny_bert, 2, False, seed=99)  # a fresh process would start from scratch weights
    result = fine_tune(resumed, enc, data.train.labels, settings, device, tmp_path / "b.pt")
    assert result.resumed_from_step == 4  # the checkpoint before the failed step
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def _cli(args, env, cwd):
    return subprocess.Popen([sys.executable, "-m", "bertsecrets", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume(tiny_bert, tiny_glue, tmp_path):
    """Kill the ingest at several moments; each restart resumes, and the end state equals an uninterrupted ingest."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(tiny_glue), "--epochs", "3",
            "--batch-size", "8", "--max-examples", "12", "--extract-batch-size", "2", "--setups", "finetuned,no_finetuning",
            "--checkpoint-every", "0"]
    reference = tmp_path / "reference"
    assert _cli([*args, "--store", str(reference)], env, tmp_path).wait() == 0
    killed = tmp_path / "killed"
    # Moments to kill at: once a training checkpoint exists, once some maps are written, and early on.
    triggers = [
        lambda: any(killed.glob("runs/*/checkpoint.pt")),
        lambda: any(killed.glob("maps/*.progress.json")),
        lambda: (killed / "tables").exists(),
    ]
    kills = reads = 0
    for trigger in triggers:
        proc = _cli([*args, "--store", str(killed)], env, tmp_path)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline and not trigger():
            if (killed / "bertsecrets-store.json").exists():  # readers work while the ingest writes
                Store.open(killed).rows("SELECT count(*) AS n FROM runs JOIN examples USING (run_id)")
                reads += 1
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 2 and reads > 0
    final = _cli([*args, "--store", str(killed)], env, tmp_path)
    out = final.communicate()[0]
    assert final.returncode == 0, out
    a, b = Store.open(reference), Store.open(killed)
    assert check_store(b, deep=True)[0] == []
    query = "SELECT run_id, setup, status, accuracy, f1 FROM runs ORDER BY run_id"
    assert a.rows(query) == b.rows(query)
    assert a.rows("SELECT * FROM examples ORDER BY run_id, example") == b.rows("SELECT * FROM examples ORDER BY run_id, example")
    assert b.rows("SELECT count(*) AS n FROM tokens")[0]["n"] == a.rows("SELECT count(*) AS n FROM tokens")[0]["n"]
    run_id = a.rows("SELECT run_id FROM runs WHERE setup = 'finetuned'")[0]["run_id"]
    for role in ("pretrained", "finetuned"):
        ra, rb = a.maps(run_id, role), b.maps(run_id, role)
        for e in range(len(ra)):
            np.testing.assert_array_equal(ra.example(e), rb.example(e))
    from safetensors.numpy import load_file

    wa = load_file(str(a.model_dir(run_id) / "model.safetensors"))
    wb = load_file(str(b.model_dir(run_id) / "model.safetensors"))
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


# -- bad input: one line, non-zero exit, nothing stored is touched ------------------------------


def _run_main(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) <= 1, err  # one line, no traceback
    return code, err.strip()


def test_bad_input_gets_one_line_and_leaves_the_store_alone(tiny_store, tiny_bert, tiny_glue, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store, _ = tiny_store
    before = snapshot(store.root)
    s = ["--store", str(store.root)]
    common = ["--data-dir", str(tiny_glue), *s]

    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    broken = write_tiny_bert(tmp_path / "broken", layers=1)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    nojson = tmp_path / "nojson"
    nojson.mkdir()
    (nojson / "config.json").write_text("{")
    bad_data = tmp_path / "bad"
    (bad_data / "MRPC").mkdir(parents=True)
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    (bad_data / "MRPC" / "train.tsv").write_text(header + "1\t1\t2\ta\tb\n")
    (bad_data / "MRPC" / "dev.tsv").write_text(header + "1\t1\t2\ta\tb\nyes\t1\t2\ta\tb\n")

    cases = [
        (["ingest", "cola", *common], "unknown task 'cola'"),
        (["ingest", "mrpc", "--model", str(gpt), *common], "is a gpt2, not a BERT"),
        (["ingest", "mrpc", "--model", str(broken), *common], "model.safetensors is unreadable"),
        (["ingest", "mrpc", "--model", str(nojson), *common], "config.json is not valid JSON"),
        (["ingest", "mrpc", "--model", str(tmp_path / "none"), *common], "cannot load model"),
        (["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(bad_data), *s], "dev.tsv:3: label 'yes' is not one of 0, 1"),
        (["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(tmp_path / "nothing"), *s], "no MRPC data in"),
        (["ingest", "mrpc", "--model", str(tiny_bert), "--epochs", "0", *common], "--epochs must be a positive whole number"),
        (["ingest", "mrpc", "--model", str(tiny_bert), "--precision", "int4", *common], "--precision must be one of uint8, float16"),
        (["sql", "SELEC * FROM runs", *s], "SQL error: Parser Error"),
        (["sql", "DELETE FROM runs", *s], "the catalog is read-only here"),
        (["sql", "SELECT 1", "--store", str(tmp_path / "nowhere")], "no store at"),
        (["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(tiny_glue), "--store", str(ROOT / "store")],
         "is not a bertsecrets store"),
    ]
    for args, expected in cases:
        code, err = _run_main(args, capsys)
        assert code != 0, args
        assert expected in err, (args, err)
        assert err.startswith("error: ") and "Traceback" not in err, err
    assert snapshot(store.root) == before
    assert check_store(store)[0] == []


def test_a_corrupt_store_is_named_by_check(tiny_bert, tiny_glue, tmp_path, capsys):
    root = tmp_path / "store"
    settings = IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(root),
                              setups=("finetuned",), **TINY_INGEST)
    plan = ingest(settings, quiet())
    store = Store.open(root)
    assert main(["check", "--store", str(root)]) == 0
    map_dir = store.maps_path(plan.map_ids["finetuned"])
    victim = sorted(map_dir.glob("attn_*/c.*"))[0]
    victim.unlink()
    (store.catalog.part_path("examples", plan.run_ids["finetuned"])).write_bytes(b"PAR1 broken")
    capsys.readouterr()
    assert main(["check", "--store", str(root)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "examples" in out and "unreadable Parquet" in out
    (store.catalog.part_path("examples", plan.run_ids["finetuned"])).unlink()
    assert main(["check", "--store", str(root)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "no dev predictions" in out and f"is missing: no chunk {victim}" in out
    # The next ingest repairs what check found missing in the catalog; the lost chunk needs the map set redone.
    code, err = _run_main(["sql", "SELECT count(*) FROM runs", "--store", str(root)], capsys)
    assert code == 0


def test_the_default_model_falls_back_to_the_bundled_one(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    resolved = resolve_model(None)
    assert (resolved.requested, resolved.used, resolved.source) == ("bert-base-uncased", "minilm", "bundled")
    assert "cannot be loaded" in resolved.notice and resolved.learning_rate == 5e-5
    with pytest.raises(UserError, match="cannot load model 'bert-base-uncased'"):
        resolve_model("bert-base-uncased")  # an explicit model never falls back
    explicit = resolve_model("minilm")
    assert explicit.notice == "" and (explicit.n_layers, explicit.n_heads) == (6, 12)


@pytest.mark.slow
def test_real_mrpc_slice_end_to_end(real_glue, tmp_path, capsys):
    """The bundled model on 64 real training pairs, 1 epoch; maps of 32 dev pairs."""
    root = tmp_path / "store"
    code = main(["ingest", "mrpc", "--model", "minilm", "--data-dir", str(real_glue), "--store", str(root),
                 "--max-train-examples", "64", "--max-examples", "32", "--epochs", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    store = Store.open(root)
    runs = {r["setup"]: r for r in store.rows("SELECT * FROM runs")}
    assert all(r["status"] == "done" and r["dev_examples"] == 408 and r["train_examples"] == 64 for r in runs.values())
    assert runs["finetuned"]["model_used"] == "minilm" and runs["finetuned"]["data_source"].startswith("glue_dir:")
    ft = runs["finetuned"]["run_id"]
    reader = store.maps(ft, "finetuned")
    assert len(reader) == 32 and (reader.n_layers, reader.n_heads) == (6, 12)
    n_tokens = store.rows("SELECT n_tokens FROM examples WHERE run_id = ? ORDER BY example LIMIT 32", [ft])
    assert reader.lengths.tolist() == [r["n_tokens"] for r in n_tokens]
    size = store.rows("SELECT bytes, n_values FROM maps WHERE run_id = ? AND role = 'finetuned'", [ft])[0]
    assert size["bytes"] / size["n_values"] < 0.6
    assert "pretrained + fine-tuning" in out and "paper" in out
    flat = " ".join(out.split())
    assert "fine-tuned on the first 64 training examples only" in flat  # Table 1 and the ablation summary say so
    assert check_store(store, deep=True)[0] == []
