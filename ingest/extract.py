"""Every attention map of every layer and head, for a set of inputs, into the store; and the norms ||f(x_j)||.

Kobayashi et al. (EMNLP 2020): a head's output at query i is sum_j a_ij f(x_j),
f(x_j) = W_h v_j, token j's value vector through the head's slice W_h of the
layer's output projection (``attention.output.dense``, its bias left out, as
it is added once after the heads are summed). The norms come from the value
vectors the registered attention function hands over (its ``values`` seam) and
the projection weights read from the model: ||W_h v||^2 = v^T (W_h^T W_h) v,
so one small Gram matrix per head replaces the hidden-size vectors.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

from bertsecrets.ingest.attention import attending, use_bertsecrets_attention
from bertsecrets.ingest.encode import Encoded, collate
from bertsecrets.ingest.layers import Pieces
from bertsecrets.ingest.train import autocast
from bertsecrets.store.maps import MapWriter, NormWriter


class OutputProjection:
    """The heads' slices of each layer's output projection, read from the model (no copied module code)."""

    def __init__(self, pieces: Pieces) -> None:
        self.weights, self.grams = [], []
        for layer in pieces.layers:
            attention = layer.attention.self
            n_heads, size = attention.num_attention_heads, attention.attention_head_size
            weight = layer.attention.output.dense.weight.detach().float()  # [hidden, n_heads * size]
            per_head = weight.view(weight.shape[0], n_heads, size).permute(1, 0, 2)  # [head, hidden, size]
            self.weights.append(per_head)
            self.grams.append(per_head.transpose(1, 2) @ per_head)  # [head, size, size]

    def vectors(self, layer: int, value: torch.Tensor) -> torch.Tensor:
        """f(x_j)[batch, head, key, hidden] from ``value[batch, head, key, size]``."""
        w = self.weights[layer].to(value.device)
        return torch.einsum("bhks,hos->bhko", value.float(), w)

    def norms(self, layer: int, value: torch.Tensor) -> torch.Tensor:
        """||f(x_j)||[batch, head, key] from ``value[batch, head, key, size]``."""
        v = value.float()
        g = self.grams[layer].to(v.device)
        return torch.einsum("bhks,hst,bhkt->bhk", v, g, v).clamp_min_(0).sqrt_()


def _through_last_attention(pieces: Pieces, inputs: dict[str, torch.Tensor]) -> None:
    """The encoder's forward pass as far as the last layer's attention: its feed-forward block changes no map."""
    hidden, mask = pieces.embed(inputs)
    hidden = pieces.run(hidden, mask, 0, pieces.n_layers - 1)
    pieces.attention_only(pieces.n_layers - 1, hidden, mask)


def _norms_into(norms: np.ndarray, projection: OutputProjection, width: int) -> Callable[[int, torch.Tensor], None]:
    """The values hook that writes each layer's ||f(x_j)|| into ``norms[example, layer, head, key]``."""
    def values(layer: int, value: torch.Tensor) -> None:
        norms[:, layer, :, :width] = projection.norms(layer, value).to(torch.float16).cpu().numpy()

    return values


@torch.inference_mode()
def extract_maps(
    model: torch.nn.Module,
    data: Encoded,
    writer: MapWriter,
    device: torch.device,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Run the encoder over the inputs the writer still needs and hand it their maps.

    Batches come from the writer (inputs of one length bucket, shortest first),
    so padding stays small. Compression and the disk write of one batch run in
    a second thread while the model computes the next. Returns the number of
    inputs done.
    """
    use_bertsecrets_attention(model)
    model.to(device).eval()
    pieces = Pieces(model)
    projection = OutputProjection(pieces) if writer.norms else None
    scale = writer.scale
    pending: Future | None = None
    done = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertsecrets-maps") as pool:
        for batch in writer.batches(batch_size):
            inputs = collate(data, batch.examples, device)
            width = inputs["input_ids"].shape[1]
            maps = writer.buffer(batch)  # [example, layer, head, query, key], padded to the bucket
            norms = writer.norm_buffer(batch) if projection else None  # [example, layer, head, key]

            def sink(layer: int, probs: torch.Tensor, maps=maps) -> None:
                # Quantise here, where the maps are made (multi-threaded, or on the GPU).
                encoded = probs.float().mul(scale).round_().to(torch.uint8) if scale else probs.to(torch.float16)
                maps[:, layer, :, :width, :width] = encoded.cpu().numpy()

            values = _norms_into(norms, projection, width) if projection else None
            with attending(capture=sink, values=values), autocast(device):
                _through_last_attention(pieces, inputs)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write, batch, maps, norms)
            done += batch.size
            if on_batch is not None:
                on_batch(batch.size)
        if pending is not None:
            pending.result()
    return done


@torch.inference_mode()
def extract_norms(
    model: torch.nn.Module,
    data: Encoded,
    writer: NormWriter,
    device: torch.device,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """The norms alone, for a map set stored without them: the same forward passes, no maps kept."""
    use_bertsecrets_attention(model)
    model.to(device).eval()
    pieces = Pieces(model)
    projection = OutputProjection(pieces)
    done = 0
    for batch in writer.batches(batch_size):
        inputs = collate(data, batch.examples, device)
        width = inputs["input_ids"].shape[1]
        norms = writer.buffer(batch)

        with attending(values=_norms_into(norms, projection, width)), autocast(device):
            _through_last_attention(pieces, inputs)
        writer.write(batch, norms)
        done += batch.size
        if on_batch is not None:
            on_batch(batch.size)
    return done
