"""Pattern classifiers (paper 4.1): the paper's CNN on resized maps, and a scikit-learn baseline on geometry.

The CNN follows the paper: eight 3x3 convolutional layers, each followed by
a ReLU (max-pooling after the 2nd, 4th and 6th), global average pooling and
a linear layer to the five classes. Its input is a map resized to
CNN_SIZE x CNN_SIZE (16: on MRPC rule labels 16 x 16 scored 0.84 and
32 x 32 0.85 macro F1, at twice the time) by area (ingest.analyses.patterns.resize: every cell is
the share of its rows' attention that falls in it, so the picture does not
depend on the input's length), quantised to uint8 in memory.

The baseline is a random forest on the geometric features
(patterns.GEOMETRY). Both are scored by stratified k-fold cross-validation
(macro F1 over the classes present, the mean over folds), then refitted on
all training maps; the CNN's labels of every map are stored as
``source = 'classifier'``.

Training maps: the people's labels of the run's maps when there are at
least MIN_PERSON_LABELS of them in two classes or more (the latest label of a
map wins, whoever gave it); otherwise the rule labeller's, on a sample of at
most RULE_SAMPLE_PER_CLASS maps per class (drawn with a fixed seed). A CNN
trained on rule labels learns to imitate the rules: its F1 says how well it
does that, not how well it agrees with people.

An input of one sentence (every input of SST-2) has no blocks: a person's
"block" label of such a map is left out of the training set (counted in
``dropped``), and both classifiers' block probability is set to 0 on such
maps, the other four renormalised, in cross-validation as in the stored
labels. The picture alone cannot tell one sentence from two, so this is
decided from the input, not learnt.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from bertsecrets.store.labels import PATTERN_CLASSES

CNN_SIZE = 16
CNN_CHANNELS = (8, 8, 16, 16, 16, 16, 32, 32)
CNN_POOL_AFTER = (1, 3, 5)  # 0-indexed convolutions followed by 2x2 max-pooling
CNN_EPOCHS = 40
CNN_MIN_STEPS = 200  # small training sets get more epochs
CNN_BATCH = 64
CNN_LR = 3e-3
CV_FOLDS = 5
MIN_PERSON_LABELS = 100
RULE_SAMPLE_PER_CLASS = 200
FOREST_TREES = 200
SEED = 0


@dataclass
class TrainingSet:
    """Maps to train on: where they are (role index, example, layer, head) and their class indices."""

    where: np.ndarray  # [map, 4] int64
    labels: np.ndarray  # [map] int64
    trained_on: str  # person | rules
    dropped: dict[str, int] = field(default_factory=dict)  # classes with too few maps to cross-validate

    def __len__(self) -> int:
        return len(self.labels)


def rule_sample(rule_labels: np.ndarray, per_class: int = RULE_SAMPLE_PER_CLASS, seed: int = SEED) -> np.ndarray:
    """Up to ``per_class`` random positions of each class in ``rule_labels[role, example, layer, head]``: [map, 4]."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(PATTERN_CLASSES)):
        where = np.argwhere(rule_labels == c)
        if len(where) > per_class:
            where = where[np.sort(rng.choice(len(where), per_class, replace=False))]
        picked.append(where)
    return np.concatenate(picked).astype(np.int64)


BLOCK = PATTERN_CLASSES.index("block")


def without_one_sentence_blocks(ts: TrainingSet, two: np.ndarray) -> TrainingSet:
    """Drop block labels of maps whose input has one sentence (``two[map]`` False); record how many."""
    keep = (ts.labels != BLOCK) | two
    if keep.all():
        return ts
    dropped = {**ts.dropped, "block on one sentence": int((~keep).sum())}
    return TrainingSet(ts.where[keep], ts.labels[keep], ts.trained_on, dropped)


def rule_out_block(probs: np.ndarray, two: np.ndarray) -> np.ndarray:
    """[map, class] probabilities with block at 0 on one-sentence maps (``two[map]`` False), rows renormalised."""
    probs = probs.copy()
    probs[~two, BLOCK] = 0.0
    total = probs.sum(axis=1, keepdims=True)
    even = np.full_like(probs, 1.0 / (len(PATTERN_CLASSES) - 1))  # a row that was all block: the other four evenly
    even[:, BLOCK] = 0.0
    return np.divide(probs, total, out=even, where=total > 0)


def usable(ts: TrainingSet, folds: int = CV_FOLDS) -> TrainingSet:
    """Drop classes with fewer than two maps (they cannot be cross-validated); record what was dropped."""
    counts = np.bincount(ts.labels, minlength=len(PATTERN_CLASSES))
    keep_class = counts >= 2
    dropped = {**ts.dropped, **{PATTERN_CLASSES[c]: int(counts[c]) for c in np.flatnonzero(~keep_class & (counts > 0))}}
    keep = keep_class[ts.labels]
    return TrainingSet(ts.where[keep], ts.labels[keep], ts.trained_on, dropped)


def n_folds(labels: np.ndarray, folds: int = CV_FOLDS) -> int:
    counts = np.bincount(labels)
    return int(min(folds, counts[counts > 0].min()))


def cross_validate(fit: Callable, predict: Callable, x: np.ndarray, y: np.ndarray, folds: int,
                   on_fold: Callable[[], None] | None = None, two: np.ndarray | None = None) -> float:
    """Mean macro F1 over stratified folds (classes present in the training set); ``two[map]``: see rule_out_block."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    classes = np.unique(y)
    scores = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(x, y):
        model = fit(x[train], y[train])
        probs = predict(model, x[test])
        if two is not None:
            probs = rule_out_block(probs, two[test])
        scores.append(f1_score(y[test], probs.argmax(axis=1), labels=classes, average="macro", zero_division=0))
        if on_fold is not None:
            on_fold()
    return float(np.mean(scores))


# -- the scikit-learn baseline ------------------------------------------------------


def fit_forest(x: np.ndarray, y: np.ndarray):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=FOREST_TREES, min_samples_leaf=2, random_state=SEED).fit(x, y)


def predict_forest(model, x: np.ndarray) -> np.ndarray:
    """[map, class] probabilities over all five classes."""
    out = np.zeros((len(x), len(PATTERN_CLASSES)))
    out[:, model.classes_] = model.predict_proba(x)
    return out


# -- the paper's CNN ----------------------------------------------------------------


def make_cnn():
    import torch.nn as nn

    layers: list[nn.Module] = []
    previous = 1
    for i, channels in enumerate(CNN_CHANNELS):
        layers += [nn.Conv2d(previous, channels, 3, padding=1), nn.ReLU()]
        if i in CNN_POOL_AFTER:
            layers.append(nn.MaxPool2d(2))
        previous = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(previous, len(PATTERN_CLASSES))]
    for layer in layers:
        if isinstance(layer, nn.Conv2d):  # He initialisation: eight plain ReLU layers otherwise start learning slowly
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread: on convolutions this small, two threads spend more time waiting on each other
    than computing (a training step: 7 ms on one thread, 120 ms on two, on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(x).float().div_(255.0).unsqueeze(1)


def fit_cnn(x: np.ndarray, y: np.ndarray):
    """Train the CNN on uint8 maps ``x[map, S, S]`` with classes ``y``; class-balanced loss."""
    import torch

    torch.manual_seed(SEED)
    model = make_cnn()
    counts = np.bincount(y, minlength=len(PATTERN_CLASSES)).astype(np.float32)
    weights = torch.from_numpy(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / (counts > 0).sum(), 0.0))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights.float())
    optimiser = torch.optim.Adam(model.parameters(), lr=CNN_LR)
    inputs, targets = _tensor(x), torch.from_numpy(y.astype(np.int64))
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    epochs = max(CNN_EPOCHS, -(-CNN_MIN_STEPS // -(-len(y) // CNN_BATCH)))
    with _one_thread():
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=generator).split(CNN_BATCH):
                optimiser.zero_grad()
                loss_fn(model(inputs[idx]), targets[idx]).backward()
                optimiser.step()
    return model.eval()


def predict_cnn(model, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    """[map, class] softmax probabilities for uint8 maps ``x[map, S, S]``."""
    import torch

    out = np.zeros((len(x), len(PATTERN_CLASSES)), dtype=np.float32)
    with torch.inference_mode(), _one_thread():
        for start in range(0, len(x), batch):
            out[start : start + batch] = torch.softmax(model(_tensor(x[start : start + batch])), dim=1).numpy()
    return out


def settings() -> dict:
    """What decides the classifiers' results (stored with each in ``classifiers.settings_json``)."""
    return {
        "cnn": {"size": CNN_SIZE, "channels": CNN_CHANNELS, "pool_after": CNN_POOL_AFTER, "epochs": CNN_EPOCHS, "min_steps": CNN_MIN_STEPS, "batch": CNN_BATCH, "lr": CNN_LR,
                "resize": "area, cell = share of its rows' attention"},
        "sklearn": {"model": "RandomForestClassifier", "trees": FOREST_TREES, "min_samples_leaf": 2},
        "folds": CV_FOLDS, "min_person_labels": MIN_PERSON_LABELS, "rule_sample_per_class": RULE_SAMPLE_PER_CLASS,
        "seed": SEED,
    }
