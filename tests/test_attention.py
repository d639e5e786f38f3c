"""The registered attention function: capture on padded batches, the layer-by-layer runner, extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from bertsecrets.ingest.attention import ATTENTION, attending, use_bertsecrets_attention
from bertsecrets.ingest.encode import Encoded, collate
from bertsecrets.ingest.extract import extract_maps
from bertsecrets.ingest.layers import Pieces
from bertsecrets.store import Store


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=24, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=64, num_labels=2)
    return use_bertsecrets_attention(BertForSequenceClassification(config).eval())


def encoded(lengths, seed=0):
    rng = np.random.default_rng(seed)
    ids = [[2] + rng.integers(5, 50, size=n - 2).tolist() + [3] for n in lengths]
    types = [[0] * (n // 2) + [1] * (n - n // 2) for n in lengths]
    return Encoded(ids, types, np.asarray(lengths), pad_id=0)


def capture(model, batch):
    maps = {}
    with torch.inference_mode(), attending(capture=lambda layer, p: maps.__setitem__(layer, p.clone())):
        logits = model(**batch).logits
    return maps, logits


def test_capture_on_a_padded_batch_equals_each_input_alone(model):
    """The masking pitfall: without the mask function, padding is attended to and maps change."""
    data = encoded([9, 4, 6])
    batched, _ = capture(model, collate(data, [0, 1, 2]))
    assert model.config._attn_implementation == ATTENTION
    for i, length in enumerate(data.lengths):
        alone, _ = capture(model, collate(data, [i]))
        for layer in range(3):
            got = batched[layer][i]  # [head, 9, 9], padded
            torch.testing.assert_close(got[:, :length, :length], alone[layer][0], atol=1e-6, rtol=0)
            assert torch.all(got[:, :length, length:] == 0)  # no attention to padding
            torch.testing.assert_close(got[:, :length].sum(-1), torch.ones(4, length))


def test_disabled_head_is_uniform_over_real_tokens(model):
    data = encoded([7, 3])
    plan = torch.zeros(3, 4, dtype=torch.bool)
    plan[1, 2] = True
    maps = {}
    with torch.inference_mode(), attending(capture=lambda layer, p: maps.__setitem__(layer, p.clone()), disabled=plan):
        model(**collate(data, [0, 1]))
    for i, length in enumerate(data.lengths):
        expected = torch.zeros(7)
        expected[:length] = 1 / length
        for q in range(length):
            torch.testing.assert_close(maps[1][i, 2, q], expected)
    assert not torch.allclose(maps[1][0, 1, 0], torch.full((7,), 1 / 7))  # other heads untouched


def test_pieces_reproduce_the_model(model):
    data = encoded([8, 5, 6], seed=1)
    batch = collate(data, [0, 1, 2])
    pieces = Pieces(model)
    with torch.inference_mode():
        hidden, mask = pieces.embed(batch)
        mid = pieces.run(hidden, mask, 0, 2)
        logits = pieces.classify(pieces.run(mid, mask, 2))
        torch.testing.assert_close(logits, model(**batch).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("precision", ["uint8", "float16"])
def test_extracted_maps_are_the_captured_maps(model, tmp_path, precision):
    lengths = [5, 12, 3, 17, 9, 16, 7]
    data = encoded(lengths, seed=2)
    store = Store.create(tmp_path / "s")
    writer = store.map_writer("m", lengths=data.lengths, n_layers=3, n_heads=4, precision=precision)
    assert extract_maps(model, data, writer, torch.device("cpu"), batch_size=2) == len(lengths)
    reader = store.map_set("m")
    tolerance = 1 / 510 if precision == "uint8" else 1e-3
    for e, length in enumerate(lengths):
        alone, _ = capture(model, collate(data, [e]))
        for layer in range(3):
            np.testing.assert_allclose(reader.layer(e, layer), alone[layer][0].numpy(), atol=tolerance + 1e-6)
