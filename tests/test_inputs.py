"""Inputs that used to be accepted and must be refused: weights that disagree with their config or hold NaN,
a training loss that becomes NaN, and data lines too long or not UTF-8."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bertsecrets.cli import main
from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import IngestSettings
from bertsecrets.core.tasks import get_task
from bertsecrets.ingest.data import BadRow, load_glue_dir, read_tsv
from bertsecrets.ingest.plan import make_plan
from bertsecrets.store import Store

HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def digest(root: Path) -> str | None:
    """A hash of every file's path and bytes under ``root``; None when it does not exist."""
    if not root.exists():
        return None
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return code, " ".join(err.split())  # the console wraps long lines at its width


# -- model folders that disagree with their weights -----------------------------------------------


def copy_model(tiny_bert: Path, folder: Path, config: dict | None = None, weights=None) -> Path:
    """The tiny BERT copied to ``folder``, its config.json updated with ``config``, its tensors edited by ``weights``."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(tiny_bert, folder)
    if config:
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(config)
        (folder / "config.json").write_text(json.dumps(cfg))
    if weights is not None:
        tensors = load_file(str(folder / "model.safetensors"))
        weights(tensors)
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _nan_in_key(tensors):
    tensors["encoder.layer.1.attention.self.key.weight"][3, 5] = np.nan


def _drop(tensors):
    del tensors["encoder.layer.2.output.dense.bias"]


def _extra(tensors):
    tensors["encoder.layer.0.attention.self.gate.weight"] = np.zeros((32, 32), np.float32)


def _narrow_pooler(tensors):
    tensors["pooler.dense.weight"] = tensors["pooler.dense.weight"][:16]


MODEL_CASES = {
    # The tiny BERT: 3 layers, 4 heads, hidden size 32, intermediate size 64.
    "config with more layers": (dict(num_hidden_layers=12), None, "config.json says num_hidden_layers 12, the weights hold 3 layers"),
    "config with fewer layers": (dict(num_hidden_layers=2), None, "config.json says num_hidden_layers 2, the weights hold 3 layers"),
    "wider config": (dict(hidden_size=64), None, "config.json says hidden_size 64, the weights' embeddings are 32 wide"),
    "heads that do not divide": (dict(num_attention_heads=5), None, "num_attention_heads 5 does not divide its hidden_size 32"),
    "other intermediate size": (dict(intermediate_size=128), None,
                                "encoder.layer.0.intermediate.dense.weight is [64, 32], config.json implies [128, 32]"),
    "missing encoder tensor": (None, _drop, "the weights lack 1 tensor(s) config.json describes, such as "
                                            "encoder.layer.2.output.dense.bias"),
    "unexpected encoder tensor": (None, _extra, "the weights hold 1 encoder tensor(s) config.json does not describe, such "
                                                "as encoder.layer.0.attention.self.gate.weight"),
    "pooler of another shape": (None, _narrow_pooler, "the weights' pooler.dense.weight is [16, 32], config.json implies [32, 32]"),
    "NaN in one tensor": (None, _nan_in_key, "model.safetensors holds NaN or infinite values in tensor "
                                             "encoder.layer.1.attention.self.key.weight"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_a_model_that_disagrees_with_its_weights_is_refused_before_any_work(case, tiny_bert, tiny_glue, tmp_path, capsys):
    config, weights, expected = MODEL_CASES[case]
    folder = copy_model(tiny_bert, tmp_path / "model", config, weights)
    store = tmp_path / "store"
    code, err = run_cli(["ingest", "mrpc", "--model", str(folder), "--data-dir", str(tiny_glue), "--store", str(store)], capsys)
    assert code != 0
    assert err.startswith("error: ") and expected in err and str(folder) in err, err
    assert digest(store) is None  # refused before the store was even created


def test_a_refused_model_leaves_an_existing_store_as_it_was(tiny_store, tiny_bert, tiny_glue, tmp_path, capsys):
    store, _ = tiny_store
    before = digest(store.root)
    folder = copy_model(tiny_bert, tmp_path / "deep", dict(num_hidden_layers=12))
    code, err = run_cli(["ingest", "mrpc", "--model", str(folder), "--data-dir", str(tiny_glue), "--store", str(store.root)], capsys)
    assert code != 0 and "num_hidden_layers 12" in err
    assert digest(store.root) == before


def test_garbage_behind_an_intact_header_is_refused(tiny_bert, tiny_glue, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    folder = copy_model(tiny_bert, tmp_path / "garbage")
    weights = folder / "model.safetensors"
    name = "encoder.layer.0.intermediate.dense.weight"
    raw = bytearray(weights.read_bytes())
    # Where the tensor's bytes lie, found by its values, not by the header the loader reads.
    start = bytes(raw).find(load_file(str(weights))[name].tobytes())
    garbage = np.random.default_rng(7).bytes(64 * 32 * 4)
    assert start > 0 and not np.isfinite(np.frombuffer(garbage, "<f4")).all()
    raw[start:start + len(garbage)] = garbage
    weights.write_bytes(bytes(raw))
    with safe_open(str(weights), framework="numpy") as fh:  # the header is intact
        assert name in fh.keys()

    store = tmp_path / "store"
    code, err = run_cli(["ingest", "mrpc", "--model", str(folder), "--data-dir", str(tiny_glue), "--store", str(store)], capsys)
    assert code != 0
    assert f"model.safetensors holds NaN or infinite values in tensor {name}" in err, err
    assert digest(store) is None


def test_bfloat16_weights_are_checked_too(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    from bertsecrets.ingest.models import resolve_model

    folder = copy_model(tiny_bert, tmp_path / "bf16")
    tensors = {k: v.to(torch.bfloat16) for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert resolve_model(str(folder)).n_layers == 3  # finite bfloat16 weights pass
    tensors["embeddings.LayerNorm.bias"][7] = float("-inf")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match="infinite values in tensor embeddings.LayerNorm.bias"):
        resolve_model(str(folder))


def test_checkpoints_with_a_prefix_and_legacy_names_still_load(tiny_bert, tmp_path):
    """A pre-training checkpoint: `bert.` before every name, LayerNorm gamma/beta, MLM head, no pooler."""
    from bertsecrets.ingest.models import load_classifier, resolve_model

    def pretraining(tensors):
        for key in list(tensors):
            value = tensors.pop(key)
            if not key.startswith("pooler."):
                tensors["bert." + key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")] = value
        tensors["cls.predictions.bias"] = np.zeros(30522, np.float32)

    folder = copy_model(tiny_bert, tmp_path / "pretraining", weights=pretraining)
    assert resolve_model(str(folder)).n_layers == 3
    original = load_classifier(tiny_bert, 2, False)
    loaded = load_classifier(folder, 2, False)
    for name in ("bert.embeddings.LayerNorm.weight", "bert.encoder.layer.2.output.dense.weight"):
        assert torch.equal(loaded.state_dict()[name], original.state_dict()[name])


def test_pytorch_bin_weights_are_checked_when_they_load(tiny_bert, tmp_path):
    """A pytorch_model.bin cannot be read without torch: its check happens when the classifier loads."""
    from safetensors.torch import load_file

    from bertsecrets.ingest.models import load_classifier, resolve_model

    folder = copy_model(tiny_bert, tmp_path / "bin", dict(num_hidden_layers=5))
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(tensors, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match=r"32 missing encoder tensor\(s\), such as bert.encoder.layer.3."):
        load_classifier(resolve_model(str(folder)).path, 2, False)
    (folder / "config.json").write_text((tiny_bert / "config.json").read_text())
    tensors["encoder.layer.0.output.dense.weight"][0, 0] = float("nan")
    torch.save(tensors, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match="NaN or infinite values in bert.encoder.layer.0.output.dense.weight"):
        load_classifier(folder, 2, False)


# -- a training loss that becomes NaN -------------------------------------------------------------


def spoil_loss(monkeypatch, from_call: int, value: float) -> None:
    """Make the classifier's training loss ``value`` from its ``from_call``-th training forward pass on."""
    from transformers import BertForSequenceClassification

    forward = BertForSequenceClassification.forward
    calls = 0

    def spoilt(self, *args, **kwargs):
        nonlocal calls
        out = forward(self, *args, **kwargs)
        if self.training and out.loss is not None:
            calls += 1
            if calls >= from_call:
                out.loss = out.loss * value
        return out

    monkeypatch.setattr(BertForSequenceClassification, "forward", spoilt)


def test_a_nan_loss_fails_the_run_and_keeps_no_weights(tiny_bert, tiny_glue, tmp_path, capsys, monkeypatch):
    spoil_loss(monkeypatch, from_call=2, value=float("nan"))
    root = tmp_path / "store"
    # 48 training pairs in batches of 16: 3 steps; the state is saved after every step.
    code, err = run_cli(["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(tiny_glue), "--store", str(root),
                         "--epochs", "1", "--batch-size", "16", "--max-examples", "12", "--setups", "finetuned",
                         "--checkpoint-every", "0"], capsys)
    assert code != 0
    assert err.startswith("error: the loss became NaN at step 2 of ") and "(3 steps, learning rate 2e-05)" in err, err
    store = Store.open(root)
    (run,) = store.rows("SELECT run_id, setup, status, error FROM runs")
    assert (run["setup"], run["status"]) == ("finetuned", "failed")
    assert run["error"] == "TrainingDiverged: " + err.removeprefix("error: ")
    assert not store.has_model(run["run_id"]) and not store.model_dir(run["run_id"]).exists()
    assert not store.checkpoint_path(run["run_id"]).exists()
    assert store.rows("SELECT count(*) AS n FROM train_log")[0]["n"] == 0


def test_fine_tune_names_the_run_and_an_infinite_loss(tiny_bert, tiny_glue, tmp_path, monkeypatch):
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.models import load_classifier, load_tokenizer
    from bertsecrets.ingest.train import TrainingDiverged, fine_tune

    data = load_glue_dir(get_task("mrpc"), tiny_glue)
    enc = encode(load_tokenizer(tiny_bert), data.train, 64)
    settings = IngestSettings(task="mrpc", learning_rate=1e-4, batch_size=8, epochs=1, checkpoint_seconds=0)
    steps = []
    spoil_loss(monkeypatch, from_call=4, value=math.inf)
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingDiverged) as caught:
        fine_tune(load_classifier(tiny_bert, 2, False), enc, data.train.labels, settings, torch.device("cpu"), checkpoint,
                  on_step=lambda done, total, loss: steps.append(done), run_id="run-1234")
    assert str(caught.value).startswith("the loss became inf at step 4 of run run-1234 (6 steps, learning rate 0.0001);")
    assert steps == [1, 2, 3] and not checkpoint.exists()


# -- data files: a field too long, bytes that are not UTF-8 ----------------------------------------


def write_dev(folder: Path, lines: list[bytes]) -> Path:
    """An MRPC folder whose train.tsv is fine and whose dev.tsv is the header and ``lines``."""
    base = folder / "MRPC"
    base.mkdir(parents=True)
    (base / "train.tsv").write_text(HEADER + "1\t1\t2\tA cat.\tA cat!\n0\t3\t4\tA dog.\tA bird.\n")
    (base / "dev.tsv").write_bytes(HEADER.encode() + b"".join(lines))
    return base / "dev.tsv"


def good_rows(n: int, start: int = 0) -> list[bytes]:
    return [f"{i % 2}\t{i}\t{i}\tSentence {i}.\tPhrase {i}.\n".encode() for i in range(start, start + n)]


def test_a_huge_field_names_its_line_and_can_be_skipped(tmp_path, tiny_bert, capsys):
    big = b"1\t9\t9\t" + b"x" * 5_000_000 + b"\tshort.\n"
    dev = write_dev(tmp_path, [*good_rows(2), big, *good_rows(2, start=2)])  # the big row is line 4
    task = get_task("mrpc")
    expected = f"{dev}:4: a field is longer than 131,072 characters"
    with pytest.raises(BadRow) as caught:
        read_tsv(dev, task)
    assert str(caught.value) == f"{expected}; fix the file or pass --skip-bad-rows to skip such rows"
    split, skipped = read_tsv(dev, task, skip_bad_rows=True)
    assert skipped == [expected]
    assert split.texts_a == [f"Sentence {i}." for i in range(4)] and split.labels.tolist() == [0, 1, 0, 1]
    code, err = run_cli(["ingest", "mrpc", "--data-dir", str(tmp_path), "--store", str(tmp_path / "store"),
                         "--model", str(tiny_bert)], capsys)
    assert code != 0 and err.startswith(f"error: {expected};"), err
    assert digest(tmp_path / "store") is None


def test_bytes_that_are_not_utf8_name_their_line_not_an_offset(tmp_path, tiny_bert, capsys):
    # Far enough into the file that the decoder's buffer does not start at the beginning.
    rows = good_rows(3000)
    rows[2499] = b"1\t7\t7\tCaf\xe9 au lait.\tCoffee.\n"  # Latin-1, line 2501
    dev = write_dev(tmp_path, rows)
    assert dev.stat().st_size > 64 * 1024
    task = get_task("mrpc")
    expected = f"{dev}:2501: not UTF-8 text (invalid byte 0xe9)"
    with pytest.raises(BadRow) as caught:
        read_tsv(dev, task)
    assert str(caught.value) == f"{expected}; fix the file or pass --skip-bad-rows to skip such rows"
    split, skipped = read_tsv(dev, task, skip_bad_rows=True)
    assert skipped == [expected] and len(split) == 2999
    assert split.texts_a[2498:2500] == ["Sentence 2498.", "Sentence 2500."]
    code, err = run_cli(["ingest", "mrpc", "--data-dir", str(tmp_path), "--store", str(tmp_path / "store"),
                         "--model", str(tiny_bert)], capsys)
    assert code != 0 and err.startswith(f"error: {expected};"), err
    # Counted in the plan (and so in the run record) when skipped.
    plan = make_plan(IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tmp_path), skip_bad_rows=True))
    assert plan.data.skipped_rows == 1 and plan.data.skipped == [expected]


def test_bad_rows_are_reported_in_file_order(tmp_path):
    """A short row before a line that is not UTF-8, within one read buffer: the short row comes first."""
    dev = write_dev(tmp_path, [*good_rows(1), b"0\t1\tonly three\n", b"1\t2\t2\t\xff\xfe\tx.\n", *good_rows(1, start=5)])
    task = get_task("mrpc")
    with pytest.raises(BadRow, match=r"dev.tsv:3: expected 5 tab-separated fields, found 3"):
        read_tsv(dev, task)
    split, skipped = read_tsv(dev, task, skip_bad_rows=True)
    assert skipped == [f"{dev}:3: expected 5 tab-separated fields, found 3", f"{dev}:4: not UTF-8 text (invalid byte 0xff)"]
    assert split.texts_a == ["Sentence 0.", "Sentence 5."]
    data = load_glue_dir(task, tmp_path, skip_bad_rows=True)
    assert data.skipped_rows == 2 and len(data.dev) == 2


def test_a_header_that_is_not_utf8_is_refused_even_when_skipping(tmp_path):
    base = tmp_path / "MRPC"
    base.mkdir()
    (base / "dev.tsv").write_bytes(b"Qu\xe4lity\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + b"".join(good_rows(2)))
    with pytest.raises(UserError, match=r"dev.tsv:1: the header is not UTF-8 text \(invalid byte 0xe4\)"):
        read_tsv(base / "dev.tsv", get_task("mrpc"), skip_bad_rows=True)
