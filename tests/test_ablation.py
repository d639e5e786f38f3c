"""Disabling heads: the intervention against a direct computation, fast sweep against naive, importance, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertsecrets.core.errors import UserError
from bertsecrets.ingest import ablation, bootstrap, metrics
from bertsecrets.ingest.attention import attending, use_bertsecrets_attention
from bertsecrets.ingest.data import load_glue_dir
from bertsecrets.ingest.encode import collate, encode
from bertsecrets.ingest.importance import example_losses, head_importance
from bertsecrets.ingest.layers import Pieces
from bertsecrets.ingest.models import load_classifier, load_tokenizer
from bertsecrets.ingest.sweep import Sweep, first_disabled_layer
from bertsecrets.core.tasks import get_task

MRPC = get_task("mrpc")


@pytest.fixture(scope="module")
def dev(tiny_bert, tiny_glue):
    data = load_glue_dir(MRPC, tiny_glue)
    return encode(load_tokenizer(tiny_bert), data.dev, 128), data.dev.labels


@pytest.fixture(scope="module")
def model(tiny_bert, dev):
    """The tiny BERT with larger weights (peaked maps, so disabling matters) and about half of each prediction."""
    m = load_classifier(tiny_bert, 2, False, seed=3)
    use_bertsecrets_attention(m)
    torch.manual_seed(1)
    with torch.no_grad():
        for module in m.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, 0.3)
        logits = m.eval()(**collate(dev[0], range(len(dev[0])))).logits
        # Halfway between two inputs' margins, so that no prediction sits on a tie that rounding could flip.
        margins = (logits[:, 1] - logits[:, 0]).sort().values
        middle = len(margins) // 2
        m.classifier.bias[1] -= (margins[middle - 1] + margins[middle]) / 2
    return m


def _padded_batch(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    batch = tokenizer(["the court approved the report yesterday because it was cheap", "he sold it"],
                      padding=True, return_tensors="pt")
    lengths = batch["attention_mask"].sum(1)
    assert lengths[1] < lengths[0]  # the second input is padded
    return batch, lengths


def _self_attention_io(model, layer: int, batch, disabled=None):
    """The hidden states entering ``layer``'s self-attention, its context output and its maps."""
    seen = {}

    def keep(module, args, kwargs, output):
        seen.update(hidden=args[0], context=output[0], probs=output[1])

    handle = Pieces(model).layers[layer].attention.self.register_forward_hook(keep, with_kwargs=True)
    try:
        with torch.no_grad(), attending(disabled=disabled):
            model(**batch)
    finally:
        handle.remove()
    return seen


def test_a_disabled_head_outputs_the_mean_of_its_value_vectors_over_real_tokens(model, tiny_bert):
    batch, lengths = _padded_batch(tiny_bert)
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    size = model.config.hidden_size // n_heads
    layer = 1
    plan = torch.zeros(2, n_layers, n_heads, dtype=torch.bool)  # a plan per input
    plan[0, layer, [0, 2]] = True
    plan[1, layer, 1] = True
    off = _self_attention_io(model, layer, batch, plan)
    on = _self_attention_io(model, layer, batch)
    # Layer 1's input does not depend on layer 1, so both runs see the same states.
    torch.testing.assert_close(off["hidden"], on["hidden"])
    attention = Pieces(model).layers[layer].attention.self
    values = attention.value(off["hidden"]).view(2, -1, n_heads, size)
    for b in range(2):
        real = int(lengths[b])
        for head in range(n_heads):
            context = off["context"][b, :real, head * size:(head + 1) * size]
            if plan[b, layer, head]:
                mean = values[b, :real, head].mean(0)  # padding excluded
                torch.testing.assert_close(context, mean.expand_as(context), rtol=1e-5, atol=1e-6)
                expected = torch.zeros(off["probs"].shape[-1])
                expected[:real] = 1.0 / real
                torch.testing.assert_close(off["probs"][b, head, :real], expected.expand(real, -1))
            else:
                torch.testing.assert_close(context, on["context"][b, :real, head * size:(head + 1) * size])
    # The padded input's mean really leaves out the padding.
    assert not torch.allclose(values[1, :, 1].mean(0), values[1, : int(lengths[1]), 1].mean(0))


def test_one_plan_for_the_whole_batch_disables_the_head_in_every_input(model, tiny_bert):
    batch, lengths = _padded_batch(tiny_bert)
    plan = torch.zeros(model.config.num_hidden_layers, model.config.num_attention_heads, dtype=torch.bool)
    plan[2, 3] = True
    probs = _self_attention_io(model, 2, batch, plan)["probs"]
    for b in range(2):
        real = int(lengths[b])
        torch.testing.assert_close(probs[b, 3, :real, :real], torch.full((real, real), 1.0 / real))
        assert float(probs[b, 3, :real, real:].abs().sum()) == 0.0


def test_asking_for_a_head_or_layer_that_does_not_exist_is_a_one_line_error():
    mask = ablation.parse_disable("4:1, 2:12,6", 6, 12)
    assert mask[3, 0] and mask[1, 11] and mask[5].all() and mask.sum() == 14
    for spec, words in (("7:1", "layer 7 does not exist"), ("2:13", "head 13 does not exist"),
                        ("0", "layer 0 does not exist"), ("4-1", "expected LAYER:HEAD"), (" , ", "needs heads")):
        with pytest.raises(UserError, match=words) as info:
            ablation.parse_disable(spec, 6, 12)
        assert "\n" not in str(info.value)


def test_first_disabled_layer():
    configs = torch.zeros(4, 3, 2, dtype=torch.bool)
    configs[1, 2, 1] = True
    configs[2, 0, 0] = configs[2, 2, 1] = True
    configs[3, 1] = True
    assert first_disabled_layer(configs).tolist() == [3, 2, 0, 1]


def test_the_fast_sweep_gives_the_naive_sweeps_predictions(model, dev):
    data, _ = dev
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    _, masks = ablation.sweep_configs(n_layers, n_heads)
    rng = np.random.default_rng(0)
    mixed = rng.random((6, n_layers, n_heads)) < 0.3  # heads in several layers at once
    configs = np.concatenate([masks, mixed, np.ones((1, n_layers, n_heads), bool)])
    # Small batches and stacks, so configurations of one start layer are split across passes.
    sweep = Sweep(model, data, torch.device("cpu"), batch_size=8, rows=24)
    fast, naive = sweep.fast(configs), sweep.naive(configs)
    assert fast.shape == (len(configs), len(data), 2)
    np.testing.assert_array_equal(fast.argmax(-1), naive.argmax(-1))
    np.testing.assert_allclose(fast, naive, atol=1e-5)
    # Both classes are predicted, and disabling changes some predictions (else this test could not fail).
    assert 0 < fast[0].argmax(-1).mean() < 1
    assert (fast.argmax(-1) != fast[0].argmax(-1)).any(axis=1).sum() >= 3


def test_the_sweeps_pieces_join_to_the_whole_sweep_bit_for_bit(model, dev):
    """A cluster sweeps a run in pieces (one per first disabled layer); joined, they are the sweep in one process."""
    from bertsecrets.ingest.sweep import slices

    data, _ = dev
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    _, masks = ablation.sweep_configs(n_layers, n_heads)
    pieces = slices(masks)
    # Every configuration in exactly one piece; a piece's configurations share their first disabled layer
    # (the baseline goes with the last layer's); the costliest (layer 0's) first.
    assert sorted(np.concatenate(pieces).tolist()) == list(range(len(masks)))
    assert len(pieces) == n_layers
    assert [p.tolist() for p in pieces] == [p.tolist() for p in ablation.sweep_parts(n_layers, n_heads)]
    firsts = [sorted({int(np.flatnonzero(m.any(-1))[0]) if m.any() else n_layers - 1 for m in masks[p]}) for p in pieces]
    assert firsts == [[layer] for layer in range(n_layers)]
    assert 0 in pieces[-1]  # the baseline
    sweep = Sweep(model, data, torch.device("cpu"), batch_size=8, rows=24)
    whole = sweep.fast(masks)
    assert (whole.argmax(-1) != whole[0].argmax(-1)).any()  # the configurations do differ
    for k in (None, 2):  # one piece a layer, or the layers merged into fewer pieces
        cut = slices(masks, k)
        assert len(cut) == (n_layers if k is None else k)
        assert sorted(np.concatenate(cut).tolist()) == list(range(len(masks)))
        for piece in cut:  # whole groups only: a layer's configurations are never split
            assert all(set(g.tolist()) <= set(piece.tolist()) or not set(g.tolist()) & set(piece.tolist()) for g in pieces)
        joined = np.zeros_like(whole)
        for chosen in cut:
            joined[chosen] = sweep.fast(masks[chosen])
        np.testing.assert_array_equal(joined, whole)


def test_the_sweep_refuses_masks_of_another_model(model, dev):
    with pytest.raises(ValueError, match=r"\[config, 3, 4\]"):
        Sweep(model, dev[0], torch.device("cpu")).fast(np.zeros((2, 6, 12), bool))


def test_head_importance_is_the_gradient_through_each_heads_output(model, dev):
    """d loss / d gate_h = <d loss / d output_h, output_h>: computed here without gates, by the chain rule."""
    data, labels = dev
    importance = head_importance(model, data, labels, torch.device("cpu"), batch_size=5)
    layers = Pieces(model).layers
    n_heads = model.config.num_attention_heads
    size = model.config.hidden_size // n_heads
    total = np.zeros((len(layers), n_heads))
    for start in range(0, len(data), 7):  # other batches than head_importance's, padding included
        idx = np.arange(start, min(start + 7, len(data)))
        outputs = []

        def keep(module, args, output):
            output[0].retain_grad()
            outputs.append(output[0])

        handles = [layer.attention.self.register_forward_hook(keep) for layer in layers]
        try:
            logits = model(**collate(data, idx)).logits
        finally:
            for h in handles:
                h.remove()
        example_losses(logits, torch.as_tensor(labels[idx]), False).sum().backward()
        for layer, out in enumerate(outputs):
            per_head = (out.grad * out).detach().view(len(idx), out.shape[1], n_heads, size).sum((1, 3))
            total[layer] += per_head.abs().sum(0).numpy()
    model.zero_grad(set_to_none=True)
    np.testing.assert_allclose(importance, total / len(data), rtol=1e-4, atol=1e-7)
    assert importance.shape == (3, 4) and (importance > 0).all()


def test_pruning_masks_disable_the_least_important_heads_first():
    importance = np.array([[0.5, 0.1, 0.9], [0.2, 0.05, 0.7]])
    counts, masks = ablation.pruning_masks(importance, fractions=(0.0, 0.5, 0.9))
    assert counts == [0, 3, 5]
    assert not masks[0].any()
    assert masks[1].tolist() == [[False, True, False], [True, True, False]]
    assert masks[2].sum() == 5 and not masks[2][0, 2]


def test_resample_counts_count_the_draws():
    draws = bootstrap.resample_indices(7, n_boot=50, seed=1)
    counts = bootstrap.resample_counts(draws, 7)
    for row, drawn in zip(counts, draws):
        np.testing.assert_array_equal(row, np.bincount(drawn, minlength=7))


@pytest.mark.parametrize("metric", ["accuracy", "f1", "pearson", "spearman"])
def test_resampled_metrics_equal_the_metric_of_each_resample(metric):
    rng = np.random.default_rng(4)
    n = 60
    if metric in ("accuracy", "f1"):
        labels = rng.integers(0, 2, n).astype(float)
        preds = rng.integers(0, 2, (3, n)).astype(float)
        preds[2] = 0  # F1 of a model that never predicts the positive class
        task = MRPC
    else:
        labels = rng.integers(0, 6, n).astype(float)  # many ties, as in STS-B scores
        preds = np.round(labels + rng.normal(0, 1.5, (3, n)), 1)
        task = get_task("sts-b")
    draws = bootstrap.resample_indices(n, n_boot=40, seed=2)
    fast = bootstrap.resampled_metric(metric, preds, labels, bootstrap.resample_counts(draws, n))
    for b, idx in enumerate(draws):
        for c in range(len(preds)):
            expected = metrics.compute(task, preds[c, idx], labels[idx])[metric]
            assert fast[b, c] == pytest.approx(expected, abs=1e-10)


def test_ablation_rows_known_answer():
    """Configuration 1 fixes 4 of 40 wrong answers: +10 points, 4 changed; 2 is the baseline again."""
    labels = np.array([1.0] * 20 + [0.0] * 20)
    base = labels.copy()
    base[:8] = 0  # 8 positives missed
    fixed = base.copy()
    fixed[:4] = 1
    logits = np.stack([np.stack([1 - p, p], axis=1) for p in (base, fixed, base)])
    configs = [ablation.Config("baseline"), ablation.Config("head", 0, 0), ablation.Config("head", 0, 1)]
    rows = ablation.ablation_rows("run-x", MRPC, configs, logits, np.array([0.5, 0.4, 0.5]), labels, n_boot=300)
    acc = {(r["kind"], r["head"]): r for r in rows if r["metric"] == "accuracy"}
    assert acc[("baseline", None)]["value"] == pytest.approx(0.8)
    helped = acc[("head", 0)]
    assert helped["delta"] == pytest.approx(0.1) and helped["changed"] == 4
    # Every resample holds only wins for configuration 1: the interval is above 0.
    assert 0 < helped["ci_low"] <= 0.1 <= helped["ci_high"]
    same = acc[("head", 1)]
    assert same["delta"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0 and same["changed"] == 0
    mean = acc[("random_head", None)]
    assert mean["delta"] == pytest.approx(0.05) and mean["loss_delta"] == pytest.approx(-0.05)
    f1 = {(r["kind"], r["head"]): r for r in rows if r["metric"] == "f1"}
    assert f1[("head", 0)]["value"] == pytest.approx(2 * 16 / (2 * 16 + 4))
    assert len(rows) == 2 * 4
