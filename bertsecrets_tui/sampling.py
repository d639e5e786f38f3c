"""The labelling queue: maps sampled evenly across tasks, layers, heads and both models."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from bertsecrets.core.tasks import ROLES


@dataclass(frozen=True)
class MapKey:
    """One map: a head of one model on one input (layers and heads 0-indexed)."""

    run_id: str
    role: str
    example: int
    layer: int
    head: int


@dataclass(frozen=True)
class Source:
    """A run whose maps can be labelled."""

    run_id: str
    task: str
    n_examples: int
    n_layers: int
    n_heads: int


def label_queue(sources: list[Source], done: set[MapKey], labeller: str, size: int = 500) -> list[MapKey]:
    """``size`` maps not in ``done`` (the labeller's own labels), spread evenly over runs (tasks), then heads.

    Runs take turns; within a run every (layer, head) comes once, in a shuffled
    order, before any comes again; the model and the input are drawn at random.
    The order is seeded by the labeller's name, so a person who comes back
    finds the same queue, less what they labelled since.
    """
    rng = random.Random(zlib.crc32(labeller.encode()))
    heads = {s.run_id: [] for s in sources}
    out: list[MapKey] = []
    seen = set(done)
    live = [s for s in sources if s.n_examples and s.n_layers and s.n_heads]
    misses = 0
    while live and len(out) < size and misses < 20 * size:
        for source in list(live):
            if not heads[source.run_id]:
                cycle = [(layer, head) for layer in range(source.n_layers) for head in range(source.n_heads)]
                rng.shuffle(cycle)
                heads[source.run_id] = cycle
            layer, head = heads[source.run_id].pop()
            key = MapKey(source.run_id, rng.choice(ROLES), rng.randrange(source.n_examples), layer, head)
            if key in seen:
                misses += 1
                continue
            seen.add(key)
            out.append(key)
            if len(out) == size:
                break
    return out
