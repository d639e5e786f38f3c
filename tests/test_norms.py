"""The norms ||f(x_j)|| (Kobayashi et al. 2020): what the store holds is the head's real output, and the backfill."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from rich.console import Console

from bertsecrets.core.tasks import ROLES
from bertsecrets.ingest.attention import attending, use_bertsecrets_attention
from bertsecrets.ingest.extract import OutputProjection
from bertsecrets.ingest.layers import Pieces
from bertsecrets.store import Store
from bertsecrets.store.maps import MapReader, MapWriter, NoNorms, NormWriter


def _stored_model(store: Store, run_id: str):
    from bertsecrets.ingest.models import load_finetuned

    return use_bertsecrets_attention(load_finetuned(store.model_dir(run_id)).eval())


def _input(store: Store, run_id: str, example: int) -> dict[str, torch.Tensor]:
    rows = store.rows("SELECT token_id, segment FROM tokens WHERE run_id = ? AND example = ? ORDER BY position",
                      [run_id, example])
    ids = torch.tensor([[r["token_id"] for r in rows]])
    return {"input_ids": ids, "token_type_ids": torch.tensor([[r["segment"] for r in rows]]),
            "attention_mask": torch.ones_like(ids)}


@torch.no_grad()  # the model's weights enter the comparisons: no graph for them
def test_weighted_value_vectors_are_the_heads_real_output_and_their_norms_are_stored(tiny_store):
    """sum_j a_ij f(x_j) per head is dense(context) - bias split by head; the store holds exactly ||f(x_j)||."""
    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    model = _stored_model(store, run_id)
    pieces = Pieces(model)
    projection = OutputProjection(pieces)
    reader = store.maps(run_id, "finetuned")
    assert reader.has_norms
    n_heads = pieces.layers[0].attention.self.num_attention_heads
    size = pieces.layers[0].attention.self.attention_head_size
    for example in (0, 5):
        probs, values, dense_in, dense_out = {}, {}, {}, {}

        def keep(i):
            def hook(module, args, out) -> None:  # returns None: the output is left as it is
                dense_in[i], dense_out[i] = args[0], out
            return hook

        hooks = [layer.attention.output.dense.register_forward_hook(keep(i)) for i, layer in enumerate(pieces.layers)]
        try:
            with attending(capture=lambda l, p: probs.__setitem__(l, p),
                                                   values=lambda l, v: values.__setitem__(l, v)):
                model(**_input(store, run_id, example))
        finally:
            for h in hooks:
                h.remove()
        stored = reader.norms(example)  # [layer, head, key]
        for layer in range(pieces.n_layers):
            dense = pieces.layers[layer].attention.output.dense
            f = projection.vectors(layer, values[layer])[0]  # [head, key, hidden]
            per_head = torch.einsum("hqk,hko->hqo", probs[layer][0].float(), f)  # sum_j a_ij f(x_j)
            # The layer's own computation: dense(context) - bias, and context split by head through W's columns.
            torch.testing.assert_close(per_head.sum(0), dense_out[layer][0] - dense.bias, atol=1e-5, rtol=1e-4)
            context = dense_in[layer][0].view(-1, n_heads, size)  # [query, head, size]
            w = dense.weight.view(dense.weight.shape[0], n_heads, size)
            by_head = torch.einsum("qhs,ohs->hqo", context, w)
            torch.testing.assert_close(per_head, by_head, atol=1e-5, rtol=1e-4)
            # What the store holds is the length of that f, to float16 precision.
            np.testing.assert_allclose(stored[layer], f.norm(dim=-1).numpy(), rtol=2e-3, atol=1e-4)
            torch.testing.assert_close(projection.norms(layer, values[layer])[0], f.norm(dim=-1), atol=1e-4, rtol=1e-4)


def _digests(folder: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern)) if p.is_file()}


def _strip_norms(path: Path) -> None:
    """Make a map set look like one from before norms: no norm arrays, no attribute."""
    for folder in path.glob("norm_*"):
        shutil.rmtree(folder)
    group = zarr.open_group(path, mode="r+")
    attrs = dict(group.attrs)
    attrs.pop("norms", None)
    group.attrs.clear()
    group.attrs.update(attrs)


def test_a_second_ingest_adds_the_norms_to_an_old_store_and_nothing_else(tiny_store, tmp_path):
    from bertsecrets.core.settings import IngestSettings
    from bertsecrets.ingest.pipeline import ingest, is_done

    store, plan = tiny_store
    root = tmp_path / "old"
    shutil.copytree(store.root, root)
    old = Store.open(root)
    run_id = plan.run_ids["finetuned"]
    before = {}
    for role in ROLES:
        path = old.maps_path(plan.map_ids[role])
        before[role] = old.maps(run_id, role).norms(3)
        _strip_norms(path)
        with pytest.raises(NoNorms, match="no norms .* run `bertsecrets ingest mrpc` to add them"):
            old.maps(run_id, role).norms(3)
    maps_bytes = {role: _digests(old.maps_path(plan.map_ids[role]), "attn_*/*") for role in ROLES}
    tables = _digests(root / "tables", "*/*.parquet")
    assert not is_done(old, plan)

    settings = dataclasses.replace(plan.settings, store=str(root))
    assert isinstance(settings, IngestSettings)
    ingest(settings, Console(file=open(os.devnull, "w")))

    again = Store.open(root)
    assert is_done(again, plan)
    for role in ROLES:
        reader = again.maps(run_id, role)
        assert reader.has_norms
        np.testing.assert_allclose(reader.norms(3), before[role], rtol=2e-3, atol=1e-4)
        assert _digests(again.maps_path(plan.map_ids[role]), "attn_*/*") == maps_bytes[role]
    changed = {k for k, v in _digests(root / "tables", "*/*.parquet").items() if tables.get(k) != v}
    # Only the map sets' sizes, the analyses' record and the norm-weighted analyses' own tables change.
    assert all(k.split("/")[0] in {"maps", "analyses"} or k.startswith("norm_") for k in changed), changed


def test_an_interrupted_backfill_resumes_with_the_examples_it_had_not_written(tmp_path):
    lengths = np.array([5, 7, 20, 6, 18])
    with MapWriter(tmp_path / "m.zarr", tmp_path / "p.json", lengths, 2, 3) as writer:
        assert not writer.norms
        for batch in writer.batches(8):
            maps = writer.buffer(batch)
            for i, length in enumerate(lengths[batch.examples]):
                maps[i, :, :, :length, :length] = 255 // length  # any values: this test is about the norms
            writer.write(batch, maps)
    chunks = _digests(tmp_path / "m.zarr", "attn_*/*")
    with NormWriter(tmp_path / "m.zarr", tmp_path / "n.json") as norms:
        first = norms.batches(2)[0]
        values = norms.buffer(first) + np.float16(1.5)
        norms.write(first, values)
    assert not MapReader(tmp_path / "m.zarr").has_norms
    with NormWriter(tmp_path / "m.zarr", tmp_path / "n.json") as norms:
        todo = {int(e) for b in norms.batches(2) for e in b.examples}
        assert todo == set(range(5)) - {int(e) for e in first.examples}
        for batch in norms.batches(2):
            norms.write(batch, norms.buffer(batch) + np.float16(2.0))
    reader = MapReader(tmp_path / "m.zarr")
    assert reader.has_norms
    for e in range(5):
        want = 1.5 if e in first.examples else 2.0
        np.testing.assert_array_equal(reader.norms(e), np.full((2, 3, lengths[e]), want, dtype=np.float32))
    assert _digests(tmp_path / "m.zarr", "attn_*/*") == chunks
    # A plain zarr reader gets the norm-weighted map as docs/store-format.md says.
    group = zarr.open_group(tmp_path / "m.zarr", mode="r")
    e = 2
    b, row, L = int(group["bucket"][e]), int(group["row"][e]), int(group["length"][e])
    attn = group[f"attn_{b:03d}"][row, :, :, :L, :L]
    norm = group[f"norm_{b:03d}"][row, :, :, :L]
    np.testing.assert_allclose(attn * norm[:, :, None, :], reader.example(e) * 2.0)
