"""The pattern classifiers: the paper's CNN shape, training sets, and learning on maps whose class is plain."""

from __future__ import annotations

import numpy as np
import torch

from bertsecrets.ingest.analyses import classifier as C
from bertsecrets.store.labels import PATTERN_CLASSES


def test_the_cnn_has_eight_convolutions_each_with_a_relu():
    layers = list(C.make_cnn())
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Conv2d)]
    assert len(convs) == 8
    assert all(isinstance(layers[i + 1], torch.nn.ReLU) for i in convs)
    out = C.make_cnn()(torch.zeros(3, 1, C.CNN_SIZE, C.CNN_SIZE))
    assert out.shape == (3, len(PATTERN_CLASSES))


def test_rule_sample_caps_each_class_and_is_reproducible():
    labels = np.zeros((2, 30, 2, 3), dtype=np.int8)
    labels[0, :5] = 3
    labels[1, :, 0, 0] = 4
    picked = C.rule_sample(labels, per_class=20)
    counts = np.bincount(labels[tuple(picked.T)], minlength=5)
    assert counts.tolist() == [20, 0, 0, 20, 20]
    assert np.array_equal(picked, C.rule_sample(labels, per_class=20))
    assert len({tuple(w) for w in picked.tolist()}) == len(picked)


def test_usable_drops_classes_that_cannot_be_cross_validated():
    ts = C.TrainingSet(np.zeros((6, 4), dtype=np.int64), np.array([0, 0, 0, 1, 1, 3]), "person")
    kept = C.usable(ts)
    assert kept.labels.tolist() == [0, 0, 0, 1, 1] and kept.dropped == {"block": 1}
    assert C.n_folds(kept.labels) == 2 and C.n_folds(np.repeat([0, 1], 9)) == C.CV_FOLDS


def _pictures(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resized maps of three plain classes with noise: a [CLS] column, a diagonal, uniform."""
    S = C.CNN_SIZE
    x = rng.random((n, S, S)) * 0.1
    y = np.arange(n) % 3
    x[y == 0, :, 0] += 0.9
    x[y == 1] += 0.9 * np.eye(S)
    y = np.array([0, 1, 4])[y]  # vertical, diagonal, heterogeneous
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8), y


def test_both_classifiers_learn_plain_classes_in_cross_validation():
    rng = np.random.default_rng(0)
    x, y = _pictures(90, rng)
    threads = torch.get_num_threads()
    assert C.cross_validate(C.fit_cnn, C.predict_cnn, x, y, 2) > 0.95
    assert torch.get_num_threads() == threads  # training on one thread gives the others back
    geo = np.stack([x[:, :, 0].mean(axis=1), np.diagonal(x, axis1=1, axis2=2).mean(axis=1)], axis=1).astype(float)
    assert C.cross_validate(C.fit_forest, C.predict_forest, geo, y, 2) > 0.95
    probs = C.predict_cnn(C.make_cnn().eval(), x[:6])
    assert probs.shape == (6, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
