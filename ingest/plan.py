"""What an ingest will produce, with every artifact's content key, and the record of each run; made without torch.

A key is a hash of all that decides an artifact's bytes: the settings that
``bertsecrets.core.settings`` declares as keyed, the data's fingerprint, the
model really loaded and its revision, the device kind and the autocast type the
computation runs in (a CPU run in float32 and a GPU run in bfloat16 differ), and
the code's version of the step.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bertsecrets.core.settings import IngestSettings, keyed, record_values
from bertsecrets.core.tasks import ROLES, SETUPS, Task, get_task
from bertsecrets.core.version import __version__
from bertsecrets.ingest.data import TaskData, load_task_data
from bertsecrets.ingest.models import ResolvedModel, resolve_model
from bertsecrets.store import content_key
from bertsecrets.store.store import utcnow

#: Bumped when a change to training or extraction changes their results.
TRAIN_VERSION = 1
MAPS_VERSION = 1


@dataclass(frozen=True)
class Compute:
    """Where the numbers are computed: the device kind and the autocast type (``float32``: none)."""

    device: str  # cpu | cuda
    dtype: str  # float32 | bfloat16 | float16


#: Where a GPU driver shows itself (NVIDIA's, ROCm's, WSL's): with none of them, torch finds no GPU.
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def resolve_compute(device: str) -> Compute:
    """The compute a ``--device`` setting gives on this machine.

    ``cpu``, and ``auto`` on a machine without any GPU driver, need no torch:
    importing it takes seconds, and a finished ingest should say so at once.
    """
    if device == "cpu" or (device == "auto" and not any(os.path.exists(p) for p in GPU_DRIVER_PATHS)):
        return Compute("cpu", "float32")
    from bertsecrets.ingest.train import autocast_dtype, pick_device

    torch_device = pick_device(device)
    return Compute(torch_device.type, autocast_dtype(torch_device))


@dataclass
class Plan:
    """One ingest: its settings (learning rate resolved), data, model and compute, and every artifact's key."""

    settings: IngestSettings
    task: Task
    data: TaskData
    model: ResolvedModel
    compute: Compute
    experiment_id: str
    run_ids: dict[str, str] = field(default_factory=dict)
    map_ids: dict[str, str] = field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        assert self.settings.learning_rate is not None
        return self.settings.learning_rate

    @property
    def n_maps(self) -> int:
        return min(self.settings.max_examples, len(self.data.dev))

    def map_part(self, role: str) -> str:
        return f"{self.run_ids['finetuned']}-{role}"


def make_plan(settings: IngestSettings, compute: Compute | None = None, model: ResolvedModel | None = None,
              data: TaskData | None = None) -> Plan:
    """The plan of ``settings``; ``compute`` defaults to what ``settings.device`` resolves to here.

    ``model`` and ``data``: what ``settings.model`` and the task's data resolved to
    already (a grid's seeds share them: hashing the weights and reading the files once).
    """
    task = get_task(settings.task)
    model = model or resolve_model(settings.model)
    data = data or load_task_data(task, settings.data_dir, settings.skip_bad_rows)
    if settings.max_train_examples is not None and settings.max_train_examples < len(data.train):
        data = replace(data, train=data.train.head(settings.max_train_examples))
    if settings.learning_rate is None:
        settings = replace(settings, learning_rate=model.learning_rate)
    compute = compute or resolve_compute(settings.device)
    values = settings.values()
    # The settings declared as keyed, with what they resolve to where that is what decides the bytes.
    resolved = {"task": task.name, "model": {"name": model.used, "revision": model.revision},
                "device": {"device": compute.device, "dtype": compute.dtype},
                "max_train_examples": data.fingerprint}
    run_fields = {name: resolved.get(name, values[name]) for name in keyed("run")}
    common = {**run_fields, "data": data.fingerprint, "train_version": TRAIN_VERSION}
    training = {name: values[name] for name in keyed("trained")}
    if training["weights"] == "float32":  # what every run stored before the setting existed: their ids stay
        del training["weights"]
    plan = Plan(settings, task, data, model, compute, content_key("exp", {**common, **training}))
    for setup in SETUPS:
        plan.run_ids[setup] = content_key("run", {**common, "setup": setup,
                                                  **({} if setup == "no_finetuning" else training)})
    maps = {"data": data.fingerprint, "n": plan.n_maps, "max_length": settings.max_length,
            "precision": settings.precision, "maps_version": MAPS_VERSION,
            "compute": resolved["device"]}
    assert set(keyed("maps")) == {"max_examples", "precision"}  # max_examples enters as n
    # The pretrained maps do not depend on the seed (only the untrained classifier head does): shared by all seeds.
    plan.map_ids["pretrained"] = content_key("maps", {**maps, "role": "pretrained", "model": resolved["model"]})
    plan.map_ids["finetuned"] = content_key("maps", {**maps, "role": "finetuned", "run": plan.run_ids["finetuned"]})
    return plan


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{__version__}+g{sha}" if sha else __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def settings_json(plan: Plan, setup: str) -> str:
    values: dict[str, Any] = plan.settings.values()
    values.update(setup=setup, model_path=str(plan.model.path), compute_device=plan.compute.device,
                  compute_dtype=plan.compute.dtype)
    if plan.data.skipped:
        values["skipped_rows_detail"] = plan.data.skipped[:100]
    return json.dumps(values, sort_keys=True, default=str)


def settings_of(record: dict[str, Any], store_root: str | Path | None = None) -> IngestSettings:
    """The settings that made a run (from its ``settings_json``), pointed at ``store_root``."""
    saved = json.loads(record["settings_json"])
    return IngestSettings.from_values(saved, **({} if store_root is None else {"store": str(store_root)}))


def new_record(plan: Plan, setup: str, version: str) -> dict[str, Any]:
    """A run's ``runs`` row as it starts."""
    trained = setup != "no_finetuning"
    return {
        "run_id": plan.run_ids[setup],
        "experiment_id": plan.experiment_id,
        "task": plan.task.name,
        "setup": setup,
        "model": plan.model.requested,
        "model_used": plan.model.used,
        "model_source": plan.model.source,
        "model_revision": plan.model.revision,
        "n_layers": plan.model.n_layers,
        "n_heads": plan.model.n_heads,
        **record_values(plan.settings, trained),
        "train_examples": len(plan.data.train),
        "dev_examples": len(plan.data.dev),
        "skipped_rows": plan.data.skipped_rows,
        "data_source": plan.data.source,
        "data_fingerprint": plan.data.fingerprint,
        "settings_json": settings_json(plan, setup),
        "status": "running",
        "stage": "start",
        "device": plan.compute.device,
        "dtype": plan.compute.dtype,
        "started_at": utcnow(),
        "code_version": version,
    }


__all__ = ["Compute", "Plan", "ROLES", "make_plan", "new_record", "resolve_compute", "settings_of", "code_version"]
