"""Every attention map of every layer and head, for a set of inputs, into the store."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch

from bertsecrets.ingest.attention import attending, use_bertsecrets_attention
from bertsecrets.ingest.encode import Encoded, collate
from bertsecrets.ingest.layers import Pieces
from bertsecrets.ingest.train import autocast
from bertsecrets.store.maps import MapWriter


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
    scale = writer.scale
    pending: Future | None = None
    done = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertsecrets-maps") as pool:
        for batch in writer.batches(batch_size):
            inputs = collate(data, batch.examples, device)
            width = inputs["input_ids"].shape[1]
            maps = writer.buffer(batch)  # [example, layer, head, query, key], padded to the bucket

            def sink(layer: int, probs: torch.Tensor, maps=maps) -> None:
                # Quantise here, where the maps are made (multi-threaded, or on the GPU).
                encoded = probs.float().mul(scale).round_().to(torch.uint8) if scale else probs.to(torch.float16)
                maps[:, layer, :, :width, :width] = encoded.cpu().numpy()

            with attending(capture=sink), autocast(device):
                hidden, mask = pieces.embed(inputs)
                hidden = pieces.run(hidden, mask, 0, pieces.n_layers - 1)
                # The last layer's feed-forward block does not change any map: skip it.
                pieces.attention_only(pieces.n_layers - 1, hidden, mask)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write, batch, maps)
            done += batch.size
            if on_batch is not None:
                on_batch(batch.size)
        if pending is not None:
            pending.result()
    return done
