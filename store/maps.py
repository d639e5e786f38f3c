"""Attention maps on disk: a Zarr v3 group per map set, padded per length bucket.

Layout (also written into the group's attributes and docs/store-format.md)::

    length[example]                    real token count L of each dev example
    bucket[example], row[example]      where its maps live
    attn_<B>[example_<B>, layer, head, query_<B>, key_<B>]
    example_<B>[example_<B>]           dev example held by each row

    norm_<B>[example_<B>, layer, head, key_<B>]   ||f(x_j)||, where the map set has norms

Example ``e`` is ``attn_<B>[row[e], layer, head, :L, :L]`` with ``B = bucket[e]``
and ``L = length[e]``; everything past L is zero padding. Inputs are bucketed by
length (B = L rounded up to a multiple of 16), so padding costs little compute
and almost no disk, yet each bucket is a plain dense array that ``zarr.open``
and ``xarray.open_zarr`` read without this package.

One chunk holds one example (all layers and heads): the unit a batch writes
whole, so a write never reads back a half-written chunk, and an interrupted
extraction resumes by rewriting the examples it had not finished.

Norms (Kobayashi et al. 2020): ``norm_<B>[row[e], layer, head, j]`` is the
length of f(x_j), token j's value vector passed through the head's slice of
the output projection, so ``attn * norm[..., None, :]`` is the norm-weighted
map a_ij ||f(x_j)||. Float16, one chunk per example like the maps, about 1/L
of their values. A map set from before norms has no such arrays and is still
valid; the ingest adds them later (``NormWriter``), and the group's attribute
``norms`` says ``complete`` once every example has them.

Default precision is uint8 through numcodecs' FixedScaleOffset (value * 255,
rounded): the absolute error is at most 1/510. ``float16`` keeps the maps to
half precision.

Writing takes the values already encoded (uint8 or float16, quantised by the
caller where the maps are made, on the GPU if there is one) and writes each
chunk's bytes as zarr would: the codec chain is the array's own (FixedScaleOffset,
bytes, zstd), tested byte for byte against zarr's writer. Going through zarr's
write path instead re-quantises float32 in numpy and pays per-chunk overhead:
about 1 s more per 400 MRPC pairs on a 2-core CPU, half the extraction time.
Chunks are compressed by the `zstandard` library (the same libzstd, so the
same bytes) in a thread pool: it releases the GIL, so a GPU machine's cores
compress in parallel while the GPU computes the next batch.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import zstandard

from bertsecrets.core.settings import PRECISIONS
from bertsecrets.store.errors import StoreCorrupt, StoreError

FORMAT = "bertsecrets-maps"
FORMAT_VERSION = 1
BUCKET_STEP = 16
DIMS = ("example", "layer", "head", "query", "key")
#: Largest absolute error of a stored value, by precision.
MAX_ABS_ERROR = {"uint8": 1 / 510, "float16": 2.0**-12}
#: The stored (encoded) dtype and the scale the caller quantises with: round(p * scale).
ENCODED_DTYPE = {"uint8": np.uint8, "float16": np.float16}
SCALE = {"uint8": 255.0, "float16": None}
#: Chunk files sit flat in the array's folder (c.<row>.0.0.0.0): no folder per chunk.
_CHUNK_KEYS = {"name": "default", "separator": "."}
_ZSTD_LEVEL = 1  # level 1 already reaches ~0.5 bytes a value on real maps; higher levels gain ~2% at 2x time

# Zarr warns that numcodecs filters are outside the v3 core spec; the filter is
# named in the metadata and zarr-python reads it back, which is all we need.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3 specification")


class NoNorms(StoreError):
    """A map set from before norms were stored, not backfilled yet."""


def bucket_of(length: int | np.ndarray, step: int = BUCKET_STEP) -> Any:
    return (np.ceil(np.asarray(length) / step) * step).astype(np.int64)


def _array_name(bucket: int) -> str:
    return f"attn_{bucket:03d}"


def _norm_name(bucket: int) -> str:
    return f"norm_{bucket:03d}"


NORM_DTYPE = np.float16
NORMS_COMPLETE = "complete"


def _create_norm_arrays(group: Any, members: dict[int, np.ndarray], n_layers: int, n_heads: int) -> None:
    """The empty norm_<B> arrays beside the maps (one chunk per example, float16, zstd)."""
    for b, rows in members.items():
        if _norm_name(b) in group:
            continue
        group.create_array(
            _norm_name(b), shape=(len(rows), n_layers, n_heads, b), chunks=(1, n_layers, n_heads, b),
            chunk_key_encoding=_CHUNK_KEYS, fill_value=0, dimension_names=[f"example_{b:03d}", "layer", "head", f"key_{b:03d}"],
            attributes={"description": "||f(x_j)||: each key token's value vector through the head's slice of the "
                                       "output projection (before its bias); norm-weighted map = attn * norm[..., None, :]"},
            dtype="float16", filters=None, compressors=[_zstd()],
        )


def _pending_batches(members: dict[int, np.ndarray], done: np.ndarray, max_examples: int) -> list["Batch"]:
    """Runs of consecutive pending rows of one bucket, at most ``max_examples`` each."""
    out: list[Batch] = []
    for b, rows in members.items():
        pending = ~done[rows]
        row = 0
        while row < len(rows):
            if not pending[row]:
                row += 1
                continue
            end = row
            while end < len(rows) and pending[end] and end - row < max_examples:
                end += 1
            out.append(Batch(bucket=b, start=row, examples=rows[row:end]))
            row = end
    return out


class _ChunkFiles:
    """Compressed chunk files written atomically from a thread pool (one zstd compressor per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="bertsecrets-zstd")

    def write_rows(self, array: Any, folder: Path, start: int, chunks: np.ndarray) -> None:
        """Chunks ``chunks[i]`` as rows ``start + i`` of ``array`` (one chunk per row)."""
        zeros = (0,) * (array.ndim - 1)
        keys = [array.metadata.encode_chunk_key((start + i, *zeros)) for i in range(len(chunks))]
        for future in [self._pool.submit(self._write, folder / key, chunks[i]) for i, key in enumerate(keys)]:
            future.result()

    def _write(self, path: Path, chunk: np.ndarray) -> None:
        compressor = getattr(self._local, "zstd", None)
        if compressor is None:  # a compressor is not thread-safe: one per thread
            compressor = self._local.zstd = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        data = compressor.compress(np.ascontiguousarray(chunk).data)
        tmp = path.with_name(f".tmp-{path.name}")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def close(self) -> None:
        self._pool.shutdown()


def _zarr() -> Any:
    """zarr, imported on first use: it takes a third of a second, and the browser's first screen reads no maps."""
    import zarr

    return zarr


def _zstd() -> Any:
    from zarr.codecs import ZstdCodec

    return ZstdCodec(level=_ZSTD_LEVEL)


def _codecs(precision: str) -> dict[str, Any]:
    if precision == "uint8":
        from zarr.codecs.numcodecs import FixedScaleOffset

        return {
            "dtype": "float32",
            "filters": [FixedScaleOffset(offset=0, scale=255, dtype="<f4", astype="u1")],
            "compressors": [_zstd()],
        }
    if precision == "float16":
        return {"dtype": "float16", "filters": None, "compressors": [_zstd()]}
    raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class Batch:
    """Consecutive rows of one bucket array: what one forward pass fills."""

    bucket: int
    start: int  # first row in attn_<bucket>
    examples: np.ndarray  # dev example indices, one per row

    @property
    def size(self) -> int:
        return len(self.examples)


class MapWriter:
    """Creates (or reopens, to resume) one map set and writes it batch by batch.

    With ``norms``, a new map set gets its norm arrays too and each batch
    writes its norms with its maps. A map set begun without them (an older
    ingest) is resumed without them: ``NormWriter`` adds them afterwards.
    """

    def __init__(
        self,
        path: Path,
        progress_path: Path,
        lengths: np.ndarray,
        n_layers: int,
        n_heads: int,
        precision: str = "uint8",
        attrs: dict[str, Any] | None = None,
        norms: bool = False,
    ) -> None:
        self.path = path
        self.progress_path = progress_path
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.n_layers, self.n_heads, self.precision = n_layers, n_heads, precision
        self.buckets = bucket_of(self.lengths)
        # Rows within a bucket: by length, then by example, so batches pad little.
        self.rows = np.zeros(len(self.lengths), dtype=np.int64)
        self.members: dict[int, np.ndarray] = {}
        for b in sorted(set(self.buckets.tolist())):
            members = np.flatnonzero(self.buckets == b)
            members = members[np.lexsort((members, self.lengths[members]))]
            self.rows[members] = np.arange(len(members))
            self.members[b] = members
        self.done = self._read_progress()
        if self.done.any() or path.exists():
            if not self._compatible():
                self.done[:] = False
                self._create(attrs or {}, norms)
        else:
            self._create(attrs or {}, norms)
        self.arrays = {b: self.group[_array_name(b)] for b in self.members}
        # Norms only where every example written here gets them: a map set begun without them stays without.
        self.norms = norms and all(_norm_name(b) in self.group for b in self.members)
        self.norm_arrays = {b: self.group[_norm_name(b)] for b in self.members} if self.norms else {}
        self._files = _ChunkFiles()
        self._mark_norms()

    # -- set-up ----------------------------------------------------------

    def _create(self, attrs: dict[str, Any], norms: bool) -> None:
        group = _zarr().open_group(self.path, mode="w", zarr_format=3)
        group.attrs.update(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "dims": list(DIMS),
                "n_examples": int(len(self.lengths)),
                "n_layers": int(self.n_layers),
                "n_heads": int(self.n_heads),
                "precision": self.precision,
                "max_abs_error": MAX_ABS_ERROR[self.precision],
                "bucket_step": BUCKET_STEP,
                "buckets": [int(b) for b in self.members],
                "read": "attn_<B>[row[e], layer, head, :length[e], :length[e]] with B = bucket[e] (zero padded past length)",
                **attrs,
            }
        )
        n = len(self.lengths)
        for name, values in (("length", self.lengths), ("bucket", self.buckets), ("row", self.rows)):
            arr = group.create_array(name, shape=(n,), chunks=(max(n, 1),), dtype="int32", dimension_names=["example"])
            arr[:] = values.astype(np.int32)
        codecs = _codecs(self.precision)
        for b, members in self.members.items():
            dims = [f"example_{b:03d}", "layer", "head", f"query_{b:03d}", f"key_{b:03d}"]
            group.create_array(
                _array_name(b),
                shape=(len(members), self.n_layers, self.n_heads, b, b),
                chunks=(1, self.n_layers, self.n_heads, b, b),
                chunk_key_encoding=_CHUNK_KEYS,
                fill_value=0,
                dimension_names=dims,
                attributes={"description": f"attention probabilities of the inputs of {b - BUCKET_STEP + 1}..{b} tokens"},
                **codecs,
            )
            index = group.create_array(
                f"example_{b:03d}", shape=(len(members),), chunks=(len(members),), dtype="int32",
                dimension_names=[f"example_{b:03d}"],
            )
            index[:] = members.astype(np.int32)
        if norms:
            _create_norm_arrays(group, self.members, self.n_layers, self.n_heads)
        self.group = group
        self._write_progress()

    def _compatible(self) -> bool:
        try:
            group = _zarr().open_group(self.path, mode="r+")
            ok = (
                group.attrs.get("format") == FORMAT
                and group.attrs.get("precision") == self.precision
                and group.attrs.get("n_layers") == self.n_layers
                and group.attrs.get("n_heads") == self.n_heads
                and np.array_equal(group["length"][:], self.lengths)
                and np.array_equal(group["bucket"][:], self.buckets)
                and np.array_equal(group["row"][:], self.rows)
                # A start killed part-way through leaves some bucket arrays or their indexes unmade or unfilled.
                and all(
                    group[_array_name(b)].shape == (len(members), self.n_layers, self.n_heads, b, b)
                    and np.array_equal(group[f"example_{b:03d}"][:], members)
                    for b, members in self.members.items()
                )
            )
        except Exception:  # a half-created group from an interrupted start: make it again
            return False
        if ok:
            self.group = group
        return bool(ok)

    def _read_progress(self) -> np.ndarray:
        return _read_done(self.progress_path, len(self.lengths))

    def _write_progress(self) -> None:
        _write_done(self.progress_path, self.done)

    def _mark_norms(self) -> None:
        """Say in the group's attributes that every example has its norms, once it does."""
        if self.norms and self.done.all() and self.group.attrs.get("norms") != NORMS_COMPLETE:
            self.group.attrs.update({"norms": NORMS_COMPLETE})

    # -- writing ---------------------------------------------------------

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def batches(self, max_examples: int) -> list[Batch]:
        """The batches still to do: runs of consecutive pending rows of one bucket, at most ``max_examples`` each."""
        return _pending_batches(self.members, self.done, max_examples)

    @property
    def encoded_dtype(self) -> type:
        return ENCODED_DTYPE[self.precision]

    @property
    def scale(self) -> float | None:
        """For uint8: the caller stores round(p * scale); for float16: None (p as float16)."""
        return SCALE[self.precision]

    def buffer(self, batch: Batch) -> np.ndarray:
        """A zeroed array [example, layer, head, query, key] of the encoded dtype for one batch."""
        return np.zeros((batch.size, self.n_layers, self.n_heads, batch.bucket, batch.bucket), dtype=self.encoded_dtype)

    def norm_buffer(self, batch: Batch) -> np.ndarray:
        """A zeroed array [example, layer, head, key] of float16 for one batch's norms."""
        return np.zeros((batch.size, self.n_layers, self.n_heads, batch.bucket), dtype=NORM_DTYPE)

    def write(self, batch: Batch, maps: np.ndarray, norms: np.ndarray | None = None) -> None:
        """Store a batch's encoded maps (padded to its bucket), and its norms when the set has them;
        then record the examples as done."""
        if maps.dtype != self.encoded_dtype or maps.shape[0] != batch.size:
            raise ValueError(f"expected {batch.size} maps of dtype {np.dtype(self.encoded_dtype)}, got {maps.shape} {maps.dtype}")
        if self.norms and (norms is None or norms.dtype != NORM_DTYPE or norms.shape[0] != batch.size):
            raise ValueError(f"this map set keeps norms: expected {batch.size} float16 norms with the maps")
        for i, length in enumerate(self.lengths[batch.examples]):
            # Padding queries carry garbage probabilities; the layout promises zeros.
            maps[i, :, :, length:, :] = 0
            maps[i, :, :, :, length:] = 0
            if self.norms:
                norms[i, :, :, length:] = 0
        array = self.arrays[batch.bucket]
        self._files.write_rows(array, self.path / array.basename, batch.start, maps)
        if self.norms:
            array = self.norm_arrays[batch.bucket]
            self._files.write_rows(array, self.path / array.basename, batch.start, norms)
        self.done[batch.examples] = True
        self._write_progress()
        self._mark_norms()

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> "MapWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def n_values(self) -> int:
        return int((self.lengths.astype(np.int64) ** 2).sum() * self.n_layers * self.n_heads)


def _read_done(progress_path: Path, n: int) -> np.ndarray:
    done = np.zeros(n, dtype=bool)
    try:
        data = json.loads(progress_path.read_text())
        done[np.asarray(data["done"], dtype=np.int64)] = True
    except (FileNotFoundError, ValueError, KeyError, IndexError, TypeError):
        pass
    return done


def _write_done(progress_path: Path, done: np.ndarray) -> None:
    tmp = progress_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"done": np.flatnonzero(done).tolist()}))
    os.replace(tmp, progress_path)


class NormWriter:
    """Adds the norms to a finished map set that lacks them, batch by batch; never touches its maps.

    The inputs' lengths and rows are the map set's own; progress is kept in its
    own file, so an interrupted backfill resumes where it stopped.
    """

    def __init__(self, path: Path, progress_path: Path) -> None:
        self.path, self.progress_path = path, progress_path
        try:
            self.group = _zarr().open_group(path, mode="r+")
            attrs = dict(self.group.attrs)
            if attrs.get("format") != FORMAT:
                raise ValueError("not a bertsecrets map set")
            self.lengths = self.group["length"][:].astype(np.int64)
            self.n_layers, self.n_heads = int(attrs["n_layers"]), int(attrs["n_heads"])
            self.members = {int(b): self.group[f"example_{int(b):03d}"][:].astype(np.int64) for b in attrs["buckets"]}
        except Exception as exc:
            raise StoreCorrupt(f"attention maps at {path} are unreadable ({exc}); run `bertsecrets check`") from exc
        if attrs.get("norms") == NORMS_COMPLETE:
            self.done = np.ones(len(self.lengths), dtype=bool)
        else:
            self.done = _read_done(progress_path, len(self.lengths))
            if not all(_norm_name(b) in self.group for b in self.members):
                self.done[:] = False  # norm arrays made anew: nothing in them yet
                _create_norm_arrays(self.group, self.members, self.n_layers, self.n_heads)
        self.arrays = {b: self.group[_norm_name(b)] for b in self.members}
        self._files = _ChunkFiles()
        self._finish()

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def batches(self, max_examples: int) -> list[Batch]:
        return _pending_batches(self.members, self.done, max_examples)

    def buffer(self, batch: Batch) -> np.ndarray:
        return np.zeros((batch.size, self.n_layers, self.n_heads, batch.bucket), dtype=NORM_DTYPE)

    def write(self, batch: Batch, norms: np.ndarray) -> None:
        if norms.dtype != NORM_DTYPE or norms.shape[0] != batch.size:
            raise ValueError(f"expected {batch.size} float16 norms, got {norms.shape} {norms.dtype}")
        for i, length in enumerate(self.lengths[batch.examples]):
            norms[i, :, :, length:] = 0
        array = self.arrays[batch.bucket]
        self._files.write_rows(array, self.path / array.basename, batch.start, norms)
        self.done[batch.examples] = True
        _write_done(self.progress_path, self.done)
        self._finish()

    def _finish(self) -> None:
        if self.complete and self.group.attrs.get("norms") != NORMS_COMPLETE:
            self.group.attrs.update({"norms": NORMS_COMPLETE})
            self.progress_path.unlink(missing_ok=True)

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> "NormWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def norms_complete(path: Path) -> bool:
    """Whether every example of the map set at ``path`` has its norms, from the group's metadata alone.

    What :attr:`MapReader.has_norms` says, without importing zarr: an ingest with nothing to do asks it of
    every run, and zarr's import alone would take longer than the rest of that check.
    """
    try:
        meta = json.loads((path / "zarr.json").read_text())
        return meta.get("attributes", {}).get("norms") == NORMS_COMPLETE
    except (OSError, ValueError, AttributeError) as exc:
        raise StoreCorrupt(f"attention maps at {path} are unreadable ({exc}); run `bertsecrets check`") from exc


class MapReader:
    """Reads one map set: a head, a layer, an example, or everything in bulk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.group = _zarr().open_group(path, mode="r")
            attrs = dict(self.group.attrs)
            if attrs.get("format") != FORMAT:
                raise ValueError("not a bertsecrets map set")
            self.lengths = self.group["length"][:].astype(np.int64)
            self.buckets = self.group["bucket"][:].astype(np.int64)
            self.rows = self.group["row"][:].astype(np.int64)
            self.arrays = {int(b): self.group[_array_name(int(b))] for b in attrs["buckets"]}
        except Exception as exc:
            raise StoreCorrupt(f"attention maps at {path} are unreadable ({exc}); run `bertsecrets check`") from exc
        self.attrs = attrs
        self.n_layers = int(attrs["n_layers"])
        self.n_heads = int(attrs["n_heads"])
        self.precision = attrs["precision"]
        self._norm_arrays: dict[int, Any] | None = None

    # -- norms -------------------------------------------------------------

    @property
    def has_norms(self) -> bool:
        """Whether every example has its norms ||f(x_j)|| (map sets of older ingests have none until backfilled)."""
        return self.attrs.get("norms") == NORMS_COMPLETE

    def _norms(self, e: int, key: tuple) -> np.ndarray:
        if not self.has_norms:
            raise NoNorms(f"no norms in the map set at {self.path}: run `bertsecrets ingest "
                          f"{self.attrs.get('task', 'TASK')}` to add them")
        if not 0 <= e < len(self.lengths):
            raise IndexError(f"example {e} is not in this map set (0..{len(self.lengths) - 1})")
        b, row, length = int(self.buckets[e]), int(self.rows[e]), int(self.lengths[e])
        try:
            data = np.asarray(self.group[_norm_name(b)][(row, *key, slice(0, length))], dtype=np.float32)
        except Exception as exc:
            raise StoreCorrupt(f"norms of example {e} in {self.path} are unreadable ({type(exc).__name__}); "
                               "run `bertsecrets check`") from exc
        if not data.any():  # a value vector's norm is never 0 for a real token: zeros are zarr's fill, a lost chunk
            raise StoreCorrupt(f"norms of example {e} are missing from {self.path}; run `bertsecrets check`")
        return data

    @property
    def has_norm_arrays(self) -> bool:
        """Whether any norm_<B> array exists: True for a map set written with norms, or being backfilled."""
        return any(_norm_name(b) in self.group for b in self.arrays)

    def norm_arrays(self) -> dict[int, Any]:
        """The norm_<B> arrays by bucket; StoreCorrupt when one is missing or its metadata does not read."""
        if self._norm_arrays is None:
            arrays = {}
            for b in self.arrays:
                try:
                    arrays[b] = self.group[_norm_name(b)]
                except Exception as exc:  # KeyError where its zarr.json is gone; zarr's own errors where it is damaged
                    why = "missing" if isinstance(exc, KeyError) else (
                        f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
                    raise StoreCorrupt(f"the norm array {self.path / _norm_name(b)} is {why}; "
                                       "run `bertsecrets check`") from exc
            self._norm_arrays = arrays
        return self._norm_arrays

    def norm_chunk_path(self, e: int) -> Path:
        """The file holding example ``e``'s norms (every layer and head)."""
        array = self.norm_arrays()[int(self.buckets[e])]
        return self.path / array.basename / array.metadata.encode_chunk_key((int(self.rows[e]), 0, 0, 0))

    def norm_chunk(self, e: int) -> np.ndarray:
        """Example ``e``'s whole norm chunk, norm[layer, head, key] padded to its bucket, decoded.

        Like :meth:`chunk`: the decoder's own error for bytes that do not decode, zeros for a missing chunk.
        """
        return np.asarray(self.norm_arrays()[int(self.buckets[e])][int(self.rows[e])], dtype=np.float32)

    def norms(self, e: int) -> np.ndarray:
        """||f(x_j)||[layer, head, key] of example ``e`` (L keys)."""
        return self._norms(e, (slice(None), slice(None)))

    def head_norms(self, e: int, layer: int, head: int) -> np.ndarray:
        """||f(x_j)||[key] of one head on example ``e``."""
        self._check(layer, head)
        return self._norms(e, (layer, head))

    def weighted_head(self, e: int, layer: int, head: int) -> np.ndarray:
        """The norm-weighted map of one head, rows renormalised to sum to 1: a_ij ||f(x_j)|| / sum_k a_ik ||f(x_k)||."""
        return renormalise(self.head(e, layer, head) * self.head_norms(e, layer, head)[None, :])

    def iter_norm_buckets(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(examples, norm[example, layer, head, key]) per bucket, in the order of ``iter_buckets``."""
        if not self.has_norms:
            raise NoNorms(f"no norms in the map set at {self.path}: run `bertsecrets ingest "
                          f"{self.attrs.get('task', 'TASK')}` to add them")
        for b in self.arrays:
            examples = self.group[f"example_{b:03d}"][:].astype(np.int64)
            try:
                data = np.asarray(self.group[_norm_name(b)][:], dtype=np.float32)
            except Exception as exc:
                raise StoreCorrupt(f"norms in {self.path} are unreadable ({type(exc).__name__}); run `bertsecrets check`") from exc
            _refuse_lost_rows(data, examples, "norms", self.path)
            yield examples, data

    def __len__(self) -> int:
        return len(self.lengths)

    def _read(self, e: int, key: tuple) -> np.ndarray:
        if not 0 <= e < len(self.lengths):
            raise IndexError(f"example {e} is not in this map set (0..{len(self.lengths) - 1})")
        b, row, length = int(self.buckets[e]), int(self.rows[e]), int(self.lengths[e])
        try:
            data = self.arrays[b][(row, *key, slice(0, length), slice(0, length))]
        except Exception as exc:
            raise StoreCorrupt(
                f"maps of example {e} in {self.path} are unreadable ({type(exc).__name__}); run `bertsecrets check`"
            ) from exc
        data = np.asarray(data, dtype=np.float32)
        if not data.any():
            raise StoreCorrupt(f"maps of example {e} are missing from {self.path}; run `bertsecrets check`")
        return data

    def head(self, e: int, layer: int, head: int) -> np.ndarray:
        """attn[query, key] of one head on example ``e`` (L x L)."""
        self._check(layer, head)
        return self._read(e, (layer, head))

    def layer(self, e: int, layer: int) -> np.ndarray:
        """attn[head, query, key] of one layer on example ``e``."""
        self._check(layer, 0)
        return self._read(e, (layer, slice(None)))

    def example(self, e: int) -> np.ndarray:
        """attn[layer, head, query, key] of example ``e``."""
        return self._read(e, (slice(None), slice(None)))

    def _check(self, layer: int, head: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer} does not exist (0..{self.n_layers - 1})")
        if not 0 <= head < self.n_heads:
            raise IndexError(f"head {head} does not exist (0..{self.n_heads - 1})")

    def iter_buckets(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Everything in bulk: (examples, attn[example, layer, head, query, key]) per bucket,
        padded to the bucket; the fast path for analyses over all maps."""
        for b, arr in self.arrays.items():
            examples = self.group[f"example_{b:03d}"][:].astype(np.int64)
            try:
                data = np.asarray(arr[:], dtype=np.float32)
            except Exception as exc:
                raise StoreCorrupt(f"maps in {self.path} are unreadable ({type(exc).__name__}); run `bertsecrets check`") from exc
            _refuse_lost_rows(data, examples, "maps", self.path)
            yield examples, data

    def chunk_path(self, e: int) -> Path:
        """The file holding example ``e``'s maps (every layer and head)."""
        array = self.arrays[int(self.buckets[e])]
        return self.path / array.basename / array.metadata.encode_chunk_key((int(self.rows[e]), 0, 0, 0, 0))

    def chunk(self, e: int) -> np.ndarray:
        """Example ``e``'s whole chunk, attn[layer, head, query, key] padded to its bucket, decoded.

        Raises the decoder's own error for bytes that do not decode (for `bertsecrets check`
        to name); a missing chunk reads as zeros, as zarr fills it.
        """
        return np.asarray(self.arrays[int(self.buckets[e])][int(self.rows[e])], dtype=np.float32)

    def stored_rows(self) -> dict[int, set[int]]:
        """Rows that have a chunk file, per bucket (for consistency checks)."""
        out = {}
        for b, arr in self.arrays.items():
            folder = self.path / arr.basename
            out[b] = {int(p.name.split(".")[1]) for p in folder.glob("c.*")} if folder.is_dir() else set()
        return out


def _refuse_lost_rows(data: np.ndarray, examples: np.ndarray, what: str, path: Path) -> None:
    """StoreCorrupt when a row of a bucket read in bulk is all zeros: zarr's fill for a chunk that is gone."""
    lost = ~data.reshape(len(data), -1).any(axis=1)
    if lost.any():
        first = int(examples[np.flatnonzero(lost)[0]])
        raise StoreCorrupt(f"{what} of example {first} are missing from {path} ({int(lost.sum())} of this bucket's "
                           f"{len(data)} inputs); run `bertsecrets check`")


def renormalise(weighted: np.ndarray) -> np.ndarray:
    """Rows of ``weighted[..., query, key]`` divided by their sums (rows summing to 0, padding, stay 0)."""
    sums = weighted.sum(axis=-1, keepdims=True)
    return np.divide(weighted, sums, out=np.zeros_like(weighted), where=sums > 0)


def forget_examples(path: Path, progress_path: Path, examples: list[int]) -> None:
    """Make a map set's writer redo ``examples`` when it resumes: progress first, then their chunks.

    In that order, an interruption leaves an example listed as not written
    whose chunk may still be there, which the writer simply overwrites.
    """
    try:
        done = json.loads(progress_path.read_text())["done"]
    except FileNotFoundError:
        done = None  # no record: the writer already treats every example as to do
    if done is not None:
        drop = set(examples)
        tmp = progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done": [e for e in done if e not in drop]}))
        os.replace(tmp, progress_path)
    reader = MapReader(path)
    for e in examples:
        reader.chunk_path(e).unlink(missing_ok=True)


def forget_norms(path: Path, progress_path: Path, examples: list[int] | None) -> None:
    """Make the norms step redo ``examples``' norms (every example's when None) when the ingest next runs.

    For examples: the norms' progress record lists every other example, then the
    group stops saying the norms are complete, then their chunks go. For all: the
    record and the norm arrays go first, then the attribute. Interrupted anywhere,
    either the group still says the norms are complete and `bertsecrets check`
    finds the damage again, or the norms step finds the examples to redo.
    """
    group = _zarr().open_group(path, mode="r+")
    complete = group.attrs.get("norms") == NORMS_COMPLETE
    if examples is None:
        progress_path.unlink(missing_ok=True)
        for b in group.attrs["buckets"]:
            folder = path / _norm_name(int(b))
            if folder.exists():
                old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
                os.replace(folder, old)
                shutil.rmtree(old, ignore_errors=True)
    else:
        n = int(group.attrs["n_examples"])
        done = np.ones(n, dtype=bool) if complete else _read_done(progress_path, n)
        done[np.asarray(examples, dtype=np.int64)] = False
        _write_done(progress_path, done)
    if complete:
        del group.attrs["norms"]
    if examples is not None:
        reader = MapReader(path)
        for e in examples:
            reader.norm_chunk_path(e).unlink(missing_ok=True)


def storage_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


__all__ = ["MapWriter", "MapReader", "NormWriter", "NoNorms", "renormalise", "Batch", "bucket_of", "forget_examples",
           "forget_norms", "PRECISIONS", "MAX_ABS_ERROR", "storage_bytes"]
