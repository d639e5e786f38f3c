"""The one attention function bertsecrets registers with transformers: eager math,
returning probabilities, with three seams: capture of the maps, of the value
vectors (for the norms of each token's contribution), and disabling of heads.

Disabling a head (the paper's section 4.6) replaces its attention map with the
uniform distribution 1/L over the input's real tokens, so the head outputs the
mean of its value vectors. That is not Hugging Face's old ``head_mask``, which
multiplied the probabilities by zero.

Use it through :func:`attending`::

    model.set_attn_implementation(ATTENTION)
    with attending(capture=sink, disabled=mask):
        model(**batch)

``sink(layer, probs)`` receives ``probs[batch, head, query, key]`` of every layer;
``values(layer, value)`` receives ``value[batch, head, key, head_dim]`` (what the
probabilities weigh; ingest/extract.py turns it into the norms ||f(x_j)||);
``disabled`` is a bool tensor ``[layer, head]`` (one plan for the whole batch) or
``[batch, layer, head]`` (a plan per input, to evaluate many in one pass).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

ATTENTION = "bertsecrets"

Sink = Callable[[int, torch.Tensor], None]


@dataclass
class _State:
    capture: Sink | None
    disabled: torch.Tensor | None
    values: Sink | None = None


_STATE: contextvars.ContextVar[_State | None] = contextvars.ContextVar("bertsecrets_attention", default=None)


@contextlib.contextmanager
def attending(capture: Sink | None = None, disabled: torch.Tensor | None = None,
              values: Sink | None = None) -> Iterator[None]:
    """Capture maps and/or value vectors, and/or disable heads, for the forward passes inside the block."""
    token = _STATE.set(_State(capture, disabled, values))
    try:
        yield
    finally:
        _STATE.reset(token)


def uniform_over_real_tokens(attention_mask: torch.Tensor | None, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """[batch, 1, query, key]: 1/L on the real keys of each input, 0 on padding."""
    if attention_mask is None:  # no padding anywhere in the batch
        return torch.full((shape[0], 1, shape[2], shape[3]), 1.0 / shape[3], dtype=dtype)
    real = (attention_mask == 0).to(dtype)  # the eager mask is 0 where attended, dtype-min elsewhere
    return real / real.sum(dim=-1, keepdim=True).clamp_min(1)


def bertsecrets_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager scaled dot-product attention; returns (output[batch, query, head, dim], probs[batch, head, query, key])."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    state = _STATE.get()
    if state is not None and state.disabled is not None:
        layer = module.layer_idx
        plan = state.disabled[..., layer, :]  # [head] or [batch, head]
        if bool(plan.any()):
            uniform = uniform_over_real_tokens(attention_mask, probs.shape, probs.dtype).to(probs.device)
            off = plan.to(probs.device)
            off = off.view(1, -1, 1, 1) if off.dim() == 1 else off[:, :, None, None]
            probs = torch.where(off, uniform, probs)
    if state is not None and state.capture is not None:
        state.capture(module.layer_idx, probs)
    if state is not None and state.values is not None:
        state.values(module.layer_idx, value)
    weights = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, probs


AttentionInterface.register(ATTENTION, bertsecrets_attention)
# Without a mask function under the same name, transformers hands the function
# attention_mask=None and padding is silently attended to.
AttentionMaskInterface.register(ATTENTION, eager_mask)


def use_bertsecrets_attention(model: torch.nn.Module) -> torch.nn.Module:
    model.set_attn_implementation(ATTENTION)
    return model
