"""Tokenising a split once, and padding batches of it on the fly (dynamic padding)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bertsecrets.ingest.data import Split


@dataclass
class Encoded:
    """Token ids of every input of a split, unpadded; ``lengths[i]`` counts [CLS] and [SEP]s."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    lengths: np.ndarray
    pad_id: int
    encodings: list[Any] | None = None  # tokenizers' Encoding objects (offsets, word ids), if kept

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(tokenizer, split: Split, max_length: int, keep_encodings: bool = False) -> Encoded:
    args = (split.texts_a,) if split.texts_b is None else (split.texts_a, split.texts_b)
    enc = tokenizer(*args, truncation=True, max_length=max_length, return_offsets_mapping=keep_encodings)
    ids = enc["input_ids"]
    types = enc.get("token_type_ids") or [[0] * len(x) for x in ids]
    return Encoded(
        input_ids=ids,
        token_type_ids=types,
        lengths=np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids)),
        pad_id=tokenizer.pad_token_id or 0,
        encodings=enc.encodings if keep_encodings else None,
    )


def collate(enc: Encoded, indices, device=None) -> dict:
    """Pad the inputs at ``indices`` to the longest of them: input_ids, token_type_ids, attention_mask."""
    import torch

    indices = list(indices)
    width = int(max(enc.lengths[i] for i in indices))
    ids = np.full((len(indices), width), enc.pad_id, dtype=np.int64)
    types = np.zeros((len(indices), width), dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    for row, i in enumerate(indices):
        n = len(enc.input_ids[i])
        ids[row, :n] = enc.input_ids[i]
        types[row, :n] = enc.token_type_ids[i]
        mask[row, :n] = 1
    batch = {
        "input_ids": torch.from_numpy(ids),
        "token_type_ids": torch.from_numpy(types),
        "attention_mask": torch.from_numpy(mask),
    }
    if device is not None:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices in batches of similar length: the fastest order for inference."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def token_rows(run_id: str, tokenizer, enc: Encoded, n: int) -> list[dict]:
    """The catalog's ``tokens`` rows for the first ``n`` inputs (needs ``keep_encodings``)."""
    assert enc.encodings is not None
    rows = []
    for example in range(n):
        e = enc.encodings[example]
        pieces = tokenizer.convert_ids_to_tokens(e.ids)
        for position, (piece, token_id, seq, word, (start, end)) in enumerate(
            zip(pieces, e.ids, e.sequence_ids, e.word_ids, e.offsets)
        ):
            special = seq is None
            rows.append(
                {
                    "run_id": run_id,
                    "example": example,
                    "position": position,
                    "token": piece,
                    "token_id": token_id,
                    "segment": e.type_ids[position],
                    "word": None if special else word,
                    "char_start": None if special else start,
                    "char_end": None if special else end,
                }
            )
    return rows
