"""Fine-tuning as in the original BERT paper, resumable from a checkpoint at any step.

AdamW with weight decay 0.01 (not on biases and LayerNorm), a linear schedule
with warm-up, gradient clipping at 1.0, dynamic padding. The data order of
epoch k is a permutation drawn from (seed, k), and the checkpoint holds the
optimiser, schedule and random states, so a run interrupted and resumed gives
the same weights as one that never stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import IngestSettings
from bertsecrets.ingest.encode import Encoded, collate, length_sorted_batches


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the run failed and nothing it trained is kept."""


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


@dataclass
class TrainResult:
    log: list[dict] = field(default_factory=list)  # one row per optimiser step: epoch, step, loss, lr
    seconds: float = 0.0
    resumed_from_step: int = 0


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device) -> str:
    """The type a device computes in: bf16 on GPUs that have it, fp16 on older ones, float32 (no autocast) on CPU."""
    if device.type != "cuda":
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def autocast(device: torch.device):
    """Autocast to ``autocast_dtype(device)``; nothing on CPU."""
    dtype = autocast_dtype(device)
    if dtype == "float32":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cuda", dtype=getattr(torch, dtype))


def _optimizer(model: torch.nn.Module, settings: IngestSettings, device: torch.device) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel is the same update in one launch per step on a GPU.
    return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=device.type == "cuda")


def fine_tune(
    model: torch.nn.Module,
    data: Encoded,
    labels: np.ndarray,
    settings: IngestSettings,
    device: torch.device,
    checkpoint: Path,
    on_step: Callable[[int, int, float], None] | None = None,
    run_id: str | None = None,
) -> TrainResult:
    """Train ``model`` in place; resumes from ``checkpoint`` when it exists, and removes it at the end.

    ``on_step(done, total, loss)`` is called after every optimiser step. A loss
    that becomes NaN or infinite raises `TrainingDiverged` (naming ``run_id``)
    and removes the checkpoint.
    """
    from transformers import get_linear_schedule_with_warmup

    model.to(device).train()
    label_dtype = torch.float32 if model.config.problem_type == "regression" else torch.long
    n = len(data)
    per_epoch = steps_per_epoch(n, settings.batch_size)
    total = per_epoch * settings.epochs
    optimizer = _optimizer(model, settings, device)
    schedule = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total), total)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    result = TrainResult()
    step = 0
    torch.manual_seed(settings.seed)
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        step, result.log, result.seconds = state["step"], state["log"], state["seconds"]
        result.resumed_from_step = step

    def save() -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
            "step": step,
            "log": result.log,
            "seconds": result.seconds,
        }
        tmp = checkpoint.with_name(checkpoint.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, checkpoint)

    label_tensor = torch.as_tensor(labels, dtype=label_dtype)
    last_save = time.perf_counter()
    started = time.perf_counter() - result.seconds
    if on_step is not None and step:
        on_step(step, total, result.log[-1]["loss"] if result.log else float("nan"))
    while step < total:
        epoch, within = divmod(step, per_epoch)
        order = np.random.default_rng([settings.seed, epoch]).permutation(n)
        idx = order[within * settings.batch_size : (within + 1) * settings.batch_size]
        batch = collate(data, idx, device)
        batch["labels"] = label_tensor[idx].to(device)
        with autocast(device):
            loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        lr = schedule.get_last_lr()[0]
        schedule.step()
        step += 1
        # The loss is read back every step for the log anyway; checking it costs nothing more.
        value = float(loss.detach())
        if not math.isfinite(value):
            # The optimiser has already stepped on that loss: the weights are spoilt, and resuming from the
            # checkpoint would repeat the same steps, so neither is kept.
            checkpoint.unlink(missing_ok=True)
            raise TrainingDiverged(
                f"the loss became {'NaN' if math.isnan(value) else value} at step {step} of "
                f"{f'run {run_id}' if run_id else 'fine-tuning'} ({total} steps, learning rate "
                f"{settings.learning_rate:g}); nothing was kept: lower --lr, or check the model's weights and the data"
            )
        result.log.append({"epoch": epoch + 1, "step": step, "loss": value, "learning_rate": lr})
        result.seconds = time.perf_counter() - started
        if on_step is not None:
            on_step(step, total, value)
        if step < total and time.perf_counter() - last_save >= settings.checkpoint_seconds:
            save()
            last_save = time.perf_counter()
    model.eval()
    return result


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    data: Encoded,
    device: torch.device,
    batch_size: int = 128,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Logits [example, label] for every input, in input order."""
    model.to(device).eval()
    out: np.ndarray | None = None
    for idx in length_sorted_batches(data.lengths, batch_size):
        with autocast(device):
            logits = model(**collate(data, idx, device)).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
        if on_batch is not None:
            on_batch(len(idx))
    assert out is not None
    return out
