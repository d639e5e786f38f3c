"""Dev-set logits of a fine-tuned classifier with heads disabled: many configurations at once, and the naive loop.

A configuration is a bool mask ``[layer, head]`` of the heads to disable
(paper section 4.6: their maps become uniform over the input's real tokens,
see ``ingest/attention.py``). The naive sweep runs the whole model over the
dev set once per configuration. The fast sweep gives the same logits for about
half the work; for each batch of inputs it

1. runs the model once with nothing disabled, keeping the hidden states that
   enter every layer;
2. starts each configuration from the states entering its first disabled
   layer, since the layers before it compute exactly what they computed
   without disabling, and runs only the layers from there on;
3. stacks configurations that start at the same layer into one batch, with a
   plan per row (``attending(disabled=[row, layer, head])``);
4. computes the last layer at [CLS] only, the one position the classifier
   reads (``Pieces.last_for_cls``).

Both paths use the same attention function, so they agree up to float
rounding (``tests/test_ablation.py`` checks that their predictions are equal).
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import torch

from bertsecrets.ingest.attention import attending, use_bertsecrets_attention
from bertsecrets.ingest.encode import Encoded, collate, length_sorted_batches
from bertsecrets.ingest.layers import Pieces
from bertsecrets.ingest.train import autocast
from bertsecrets.store.queries import examples

OnBatch = Callable[[int], None]


def first_disabled_layer(configs: torch.Tensor) -> torch.Tensor:
    """[config]: the first layer with a disabled head; the layer count where nothing is disabled."""
    layers = configs.any(-1)  # [config, layer]
    first = layers.to(torch.int8).argmax(-1)  # argmax returns the first maximum
    return torch.where(layers.any(-1), first, torch.full_like(first, configs.shape[1]))


def slices(configs, pieces: int | None = None) -> list[np.ndarray]:
    """The configurations ``[config, layer, head]`` cut into independent pieces of work, costliest first.

    A piece holds whole groups of configurations that share their first
    disabled layer (the baseline goes with the last layer's), so
    :meth:`Sweep.fast` stacks exactly the configurations it would stack over
    all of them: the logits of the pieces are the logits of the whole sweep,
    bit for bit. One group a piece by default; ``pieces`` merges them into that
    many (at most one a layer), balancing their cost (the layers each
    configuration runs, plus the clean pass up to its first).
    """
    masks = np.asarray(configs)
    n_layers = masks.shape[1]
    starts = np.minimum(first_disabled_layer(torch.as_tensor(masks, dtype=torch.bool)).numpy(), n_layers - 1)
    groups = [np.flatnonzero(starts == s) for s in sorted(set(starts.tolist()))]
    if pieces is None or pieces >= len(groups):
        return groups
    bins: list[list[np.ndarray]] = [[] for _ in range(max(1, pieces))]
    load = [0.0] * len(bins)
    for group in groups:  # costliest (earliest start) first, each to the lightest piece so far
        start = int(starts[group[0]])
        i = load.index(min(load))
        bins[i].append(group)
        load[i] += len(group) * (n_layers - start) + start
    order = sorted(range(len(bins)), key=lambda i: -load[i])
    return [np.sort(np.concatenate(bins[i])) for i in order if bins[i]]


class Sweep:
    """Evaluates configurations ``[config, layer, head]`` on one model and one encoded dev set."""

    def __init__(self, model: torch.nn.Module, data: Encoded, device: torch.device,
                 batch_size: int = 32, rows: int = 64) -> None:
        use_bertsecrets_attention(model)
        self.model = model.to(device).eval()
        self.pieces = Pieces(model)
        self.data, self.device = data, device
        self.batches = length_sorted_batches(data.lengths, batch_size)
        # Inputs x configurations in one forward pass. On a 2-core CPU, 64 rows of
        # MRPC pairs beat 256 by about 10%: the activations stay in cache.
        self.rows = rows
        self.shape = (self.pieces.n_layers, int(model.config.num_attention_heads))
        self.n_labels = int(model.config.num_labels)

    def _check(self, configs) -> torch.Tensor:
        configs = torch.as_tensor(np.asarray(configs), dtype=torch.bool)
        if configs.dim() != 3 or tuple(configs.shape[1:]) != self.shape:
            raise ValueError(
                f"configurations must have shape [config, {self.shape[0]}, {self.shape[1]}] for this model, "
                f"got {tuple(configs.shape)}"
            )
        return configs

    def _logits(self, hidden: torch.Tensor, mask) -> np.ndarray:
        return self.pieces.classify(self.pieces.last_for_cls(hidden, mask)).float().cpu().numpy()

    @torch.inference_mode()
    def fast(self, configs, on_batch: OnBatch | None = None) -> np.ndarray:
        """Logits ``[config, example, label]``; ``on_batch(n)`` after each batch of n inputs."""
        configs = self._check(configs)
        n_layers = self.shape[0]
        starts = first_disabled_layer(configs)
        groups = [(int(s), (starts == s).nonzero().flatten()) for s in starts.unique().tolist()]
        # The states up to the last layer any configuration starts at (the baseline needs them all).
        top = min(n_layers - 1, int(starts.max())) if len(configs) else 0
        out = np.zeros((len(configs), len(self.data), self.n_labels), dtype=np.float32)
        for idx in self.batches:
            inputs = collate(self.data, idx, self.device)
            with autocast(self.device):
                hidden, mask = self.pieces.embed(inputs)
                states = [hidden]  # states[layer]: the hidden states entering that layer
                for layer in range(top):
                    states.append(self.pieces.run(states[-1], mask, layer, layer + 1))
                for start, members in groups:
                    if start == n_layers:  # nothing disabled
                        out[np.ix_(members.numpy(), idx)] = self._logits(states[-1], mask)[None]
                        continue
                    for chunk in members.split(max(1, self.rows // len(idx))):
                        k = len(chunk)
                        plan = configs[chunk].repeat_interleave(len(idx), dim=0).to(self.device)
                        stacked = states[start].repeat(k, 1, 1)
                        stacked_mask = None if mask is None else mask.repeat(k, 1, 1, 1)
                        with attending(disabled=plan):
                            stacked = self.pieces.run(stacked, stacked_mask, start, n_layers - 1)
                            logits = self._logits(stacked, stacked_mask)
                        out[np.ix_(chunk.numpy(), idx)] = logits.reshape(k, len(idx), -1)
            if on_batch is not None:
                on_batch(len(idx))
        return out

    @torch.inference_mode()
    def naive(self, configs, on_batch: OnBatch | None = None) -> np.ndarray:
        """The same logits, the whole model over the dev set once per configuration."""
        configs = self._check(configs)
        out = np.zeros((len(configs), len(self.data), self.n_labels), dtype=np.float32)
        for c, config in enumerate(configs):
            plan = config.to(self.device)
            for idx in self.batches:
                inputs = collate(self.data, idx, self.device)
                with attending(disabled=plan), autocast(self.device):
                    out[c, idx] = self.model(**inputs).logits.float().cpu().numpy()
                if on_batch is not None:
                    on_batch(len(idx))
        return out


def dev_split(store, record: dict):
    """The first ``max_examples`` inputs of a run's dev split (the ones with stored maps), as a ``Split``."""
    from bertsecrets.ingest.data import Split

    rows = examples(store, record["run_id"], below=int(json.loads(record["settings_json"])["max_examples"]))
    texts_b = [r["text_b"] for r in rows]
    labels = np.array([r["label"] for r in rows], dtype=np.float64)
    return Split([r["text_a"] for r in rows], None if all(t is None for t in texts_b) else texts_b, labels)


def load_run(store, record: dict, device: torch.device) -> tuple[torch.nn.Module, Encoded, np.ndarray]:
    """A fine-tuned run's model, and the first ``max_examples`` inputs of its dev split (the ones with stored maps)."""
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.models import load_finetuned, load_tokenizer

    folder = store.model_dir(record["run_id"])
    model = load_finetuned(folder)
    split = dev_split(store, record)
    data = encode(load_tokenizer(folder), split, int(record["max_length"]))
    return model.to(device).eval(), data, split.labels
