"""Head importance after Michel et al. (2019): |d loss / d gate| of every head, one backward pass over the dev set.

Each head's output (its slice of the context, before the attention's output
projection) is multiplied by a gate xi = 1, and the importance of head h is

    I_h = mean over dev inputs x of | d loss(x) / d xi_h |

(Michel et al. 2019, "Are Sixteen Heads Really Better than One?"). Every
input gets its own gates, so the backward pass of a batch of summed losses
gives each input's own gradient; Michel et al.'s code took |.| of the batch's
gradient instead, which lets the inputs of a batch cancel each other. The
scores are not normalised per layer, so the rank and the pruning order
(``ingest/ablation.py``) use one number a reader can check.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from bertsecrets.ingest.attention import use_bertsecrets_attention
from bertsecrets.ingest.encode import Encoded, collate, length_sorted_batches
from bertsecrets.ingest.layers import Pieces
from bertsecrets.ingest.train import autocast


def example_losses(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """[example]: the loss the model was fine-tuned with (cross-entropy, or squared error for regression)."""
    if regression:
        return torch.nn.functional.mse_loss(logits.float().squeeze(-1), labels.float(), reduction="none")
    return torch.nn.functional.cross_entropy(logits.float(), labels.long(), reduction="none")


def head_importance(
    model: torch.nn.Module,
    data: Encoded,
    labels: np.ndarray,
    device: torch.device,
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """[layer, head]: the mean over the inputs of |d loss / d gate|."""
    use_bertsecrets_attention(model)
    model.to(device).eval()
    layers = Pieces(model).layers
    n_heads = int(model.config.num_attention_heads)
    size = int(model.config.hidden_size) // n_heads
    regression = int(model.config.num_labels) == 1
    targets = torch.as_tensor(np.asarray(labels))
    gates: dict[str, torch.Tensor] = {}

    def gate(layer: int):
        def scale(module, args):
            # args[0]: the heads' outputs side by side, [batch, query, head * size]
            per_unit = gates["now"][:, layer].repeat_interleave(size, dim=-1)
            return (args[0] * per_unit[:, None, :].to(args[0].dtype), *args[1:])
        return scale

    handles = [layer.attention.output.dense.register_forward_pre_hook(gate(i)) for i, layer in enumerate(layers)]
    total = torch.zeros(len(layers), n_heads, dtype=torch.float64)
    try:
        for idx in length_sorted_batches(data.lengths, batch_size):
            inputs = collate(data, idx, device)
            gates["now"] = torch.ones(len(idx), len(layers), n_heads, device=device, requires_grad=True)
            with autocast(device):
                logits = model(**inputs).logits
            loss = example_losses(logits, targets[idx].to(device), regression).sum()
            (grad,) = torch.autograd.grad(loss, gates["now"])
            total += grad.abs().sum(0).double().cpu()
            if on_batch is not None:
                on_batch(len(idx))
    finally:
        for handle in handles:
            handle.remove()
        gates.clear()
    return (total / len(data)).numpy()
