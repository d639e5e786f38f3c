"""The steps of one run (train, evaluate, tokens, maps), each skipped when its artifact exists."""

from __future__ import annotations

import json
import time
from functools import cached_property
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress

from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import ROLES, SETUPS
from bertsecrets.ingest import metrics
from bertsecrets.ingest.encode import Encoded, encode, token_rows
from bertsecrets.ingest.extract import extract_maps, extract_norms
from bertsecrets.ingest.models import load_classifier, load_finetuned, load_tokenizer, quiet_transformers, round_weights
from bertsecrets.ingest.plan import Plan, new_record
from bertsecrets.ingest.progress import fmt_seconds
from bertsecrets.ingest.train import fine_tune, pick_device, predict, steps_per_epoch
from bertsecrets.store import Store
from bertsecrets.store.maps import storage_bytes
from bertsecrets.store.store import utcnow


class Work:
    """Does the runs of one plan, writing each artifact to the store as it is made."""

    def __init__(self, store: Store, plan: Plan, console: Console, version: str) -> None:
        self.store, self.plan, self.console, self.version = store, plan, console, version
        self.progress: Progress | None = None
        quiet_transformers()
        self.device = pick_device(plan.settings.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
        self.tokenizer = load_tokenizer(plan.model.path)

    @cached_property
    def train_data(self) -> Encoded:
        return encode(self.tokenizer, self.plan.data.train, self.plan.settings.max_length)

    @cached_property
    def dev_data(self) -> Encoded:
        return encode(self.tokenizer, self.plan.data.dev, self.plan.settings.max_length, keep_encodings=True)

    # -- helpers ---------------------------------------------------------

    def _bar(self, description: str, total: int, done: int = 0) -> Any:
        assert self.progress is not None
        return self.progress.add_task(description, total=total, completed=done, info="")

    def _advance(self, bar: Any, n: int = 1, **fields: Any) -> None:
        assert self.progress is not None
        self.progress.update(bar, advance=n, **fields)

    def _save(self, record: dict[str, Any], **changes: Any) -> None:
        record.update(changes)
        self.store.save_run(record)

    def _say(self, text: str) -> None:
        self.console.print(f"  [green]✓[/] {text}")

    # -- one run ---------------------------------------------------------

    def run(self, setup: str) -> None:
        """One run from start to finish, in this process: its model, evaluation, and for ``finetuned`` the maps."""
        plan, store = self.plan, self.store
        run_id = plan.run_ids[setup]
        with store.lock(run_id, f"run {run_id} ({plan.task.name}, {setup})"):
            record = self._start(setup)
            try:
                model = self._model(setup, record)
                self._evaluate(setup, record, model)
                if setup == "finetuned":
                    self._tokens(record)
                    for role in ROLES:
                        self._maps(role, record, model)
                self._save(record, status="done", stage="done", finished_at=utcnow())
            except KeyboardInterrupt:
                self._save(record, status="interrupted")
                raise
            except Exception as exc:
                self._save(record, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
                raise

    # -- the same run as units of work (``ingest/units.py``), each in a process of its own --------

    def train(self, setup: str, wait: float = 0.0) -> None:
        """A run's model and evaluation (and tokens): all of a run but its maps, which ``maps`` makes.

        A run without maps ends here; a fine-tuned run stays ``running`` at stage
        ``maps`` until ``finish`` (after both map sets). A failure is recorded by
        whoever waits on this unit, once nothing else of the run is running.
        """
        plan, store = self.plan, self.store
        run_id = plan.run_ids[setup]
        with store.lock(run_id, f"run {run_id} ({plan.task.name}, {setup})", wait=wait):
            record = self._start(setup)
            model = self._model(setup, record)
            self._evaluate(setup, record, model)
            if setup == "finetuned":
                self._tokens(record)
                self._save(record, stage="maps")
            else:
                self._save(record, status="done", stage="done", finished_at=utcnow())

    def maps(self, role: str, wait: float = 0.0) -> None:
        """One map set of the fine-tuned run; the fine-tuned model is read back from the store."""
        self._maps(role, None, None, wait=wait)

    def finish(self, setup: str, wait: float = 0.0) -> None:
        """Mark a run done once all its units are (its maps written)."""
        plan, store = self.plan, self.store
        run_id = plan.run_ids[setup]
        with store.lock(run_id, f"run {run_id} ({plan.task.name}, {setup})", wait=wait):
            record = store.run(run_id)
            if record is None:
                raise UserError(f"run {run_id} has no record to finish: run the ingest again")
            if record["status"] != "done":
                self._save(record, status="done", stage="done", finished_at=utcnow(), error=None)

    def _start(self, setup: str) -> dict[str, Any]:
        """The run's record, new or as stored, marked running (call it holding the run's lock)."""
        plan, store = self.plan, self.store
        run_id = plan.run_ids[setup]
        store.clean_leftovers(run_id)
        record = store.run(run_id) or new_record(plan, setup, self.version)
        resumed = record.get("stage") not in (None, "start")
        self.console.print(
            f"[bold]{SETUPS[setup]}[/] (run {run_id})" + (" [yellow]resuming[/]" if resumed else "")
        )
        self._save(record, status="running", error=None, code_version=self.version)
        return record

    def _model(self, setup: str, record: dict[str, Any]) -> torch.nn.Module:
        """The run's classifier: fine-tuned (trained now, or read back from the store) or untrained."""
        plan, store, s = self.plan, self.store, self.plan.settings
        task = plan.task
        regression = task.label_kind == "regression"
        if setup == "no_finetuning":
            return load_classifier(plan.model.path, task.num_labels, regression, seed=s.seed)
        run_id = plan.run_ids[setup]
        folder = store.model_dir(run_id)
        if store.has_model(run_id):
            return load_finetuned(folder)
        model = load_classifier(plan.model.path, task.num_labels, regression, random_init=setup == "random_init", seed=s.seed)
        settings = s  # the plan's settings carry the resolved learning rate
        checkpoint = store.checkpoint_path(run_id)
        per_epoch = steps_per_epoch(len(self.train_data), settings.batch_size)
        total = per_epoch * settings.epochs
        bar = self._bar(f"fine-tuning ({setup})", total)
        self._save(record, stage="training")

        def on_step(done: int, total: int, loss: float) -> None:
            epoch = min(settings.epochs, (done - 1) // per_epoch + 1) if done else 1
            self.progress.update(bar, completed=done, info=f"epoch {epoch}/{settings.epochs} loss {loss:.3f}")

        result = fine_tune(model, self.train_data, plan.data.train.labels, settings, self.device, checkpoint, on_step,
                           run_id=run_id)
        # The log and timing first: once the weights are in place, training is not redone.
        store.catalog.write("train_log", run_id, [{"run_id": run_id, **row} for row in result.log])
        self._save(record, train_seconds=result.seconds)
        # From here on the run computes with the weights as stored, read back or not.
        round_weights(model, settings.weights)
        with store.staging(folder) as tmp:
            model.to(getattr(torch, settings.weights)).save_pretrained(str(tmp), safe_serialization=True)
            model.to(torch.float32)
            self.tokenizer.save_pretrained(str(tmp))
        checkpoint.unlink(missing_ok=True)
        resumed = f", resumed at step {result.resumed_from_step}" if result.resumed_from_step else ""
        self._say(f"fine-tuned: {total} steps in {fmt_seconds(result.seconds)}{resumed}; weights in the store")
        return model

    def _evaluate(self, setup: str, record: dict[str, Any], model: torch.nn.Module) -> None:
        plan, store = self.plan, self.store
        run_id, task = plan.run_ids[setup], plan.task
        if store.catalog.has_part("examples", run_id) and record.get("metrics_json"):
            return
        self._save(record, stage="evaluating")
        bar = self._bar(f"evaluating ({setup})", len(self.dev_data))
        started = time.perf_counter()
        model.set_attn_implementation("sdpa")
        logits = predict(model, self.dev_data, self.device, plan.settings.eval_batch_size,
                         on_batch=lambda n: self._advance(bar, n))
        seconds = time.perf_counter() - started
        labels = plan.data.dev.labels
        preds = metrics.predictions(task, logits)
        scores = metrics.compute(task, preds, labels)
        correct = metrics.correct(task, preds, labels)
        dev = plan.data.dev
        rows = [
            {
                "run_id": run_id, "example": i, "text_a": dev.texts_a[i],
                "text_b": None if dev.texts_b is None else dev.texts_b[i],
                "label": float(labels[i]), "n_tokens": int(self.dev_data.lengths[i]),
                "prediction": float(preds[i]), "correct": None if correct is None else bool(correct[i]),
            }
            for i in range(len(dev))
        ]
        store.catalog.write("examples", run_id, rows)
        self._save(record, eval_seconds=seconds, metrics_json=_json(scores), **{k: scores.get(k) for k in ("accuracy", "f1", "pearson", "spearman")})
        shown = ", ".join(f"{k} {100 * v:.1f}" if v is not None else f"{k} -" for k, v in scores.items())
        self._say(f"dev {shown} ({len(dev)} examples, {fmt_seconds(seconds)})")

    def _tokens(self, record: dict[str, Any]) -> None:
        plan = self.plan
        run_id = plan.run_ids["finetuned"]
        if not self.store.catalog.has_part("tokens", run_id):
            self.store.catalog.write("tokens", run_id, token_rows(run_id, self.tokenizer, self.dev_data, plan.n_maps))

    def _maps(self, role: str, record: dict[str, Any] | None, finetuned: torch.nn.Module | None,
              wait: float = 0.0) -> None:
        """One map set, unless done; ``record``: the run's, to show the stage (in-process runs only)."""
        store, map_id, part = self.store, self.plan.map_ids[role], self.plan.map_part(role)
        existing = store.catalog.read_part("maps", part)
        if existing is not None and existing.num_rows and existing["status"][0].as_py() == "done":
            return
        if record is not None:
            self._save(record, stage=f"maps:{role}")
        # The pretrained maps are shared by the runs of every seed: one writer at a time.
        with store.lock(map_id, f"map set {map_id}", wait=wait):
            self._write_maps(role, part, map_id, finetuned)

    def _write_maps(self, role: str, part: str, map_id: str, finetuned: torch.nn.Module | None) -> None:
        plan, store, s = self.plan, self.store, self.plan.settings
        run_id, n = plan.run_ids["finetuned"], plan.n_maps
        attrs = {"run_id": run_id, "role": role, "task": plan.task.name, "model": plan.model.used,
                 "model_revision": plan.model.revision, "dev_examples": f"the first {n} of the dev split, in order"}
        with store.map_writer(map_id, lengths=self.dev_data.lengths[:n], n_layers=plan.model.n_layers,
                              n_heads=plan.model.n_heads, precision=s.precision, attrs=attrs,
                              norms=True) as writer:
            row = {"map_id": map_id, "run_id": run_id, "role": role, "n_examples": n, "n_layers": plan.model.n_layers,
                   "n_heads": plan.model.n_heads, "precision": s.precision, "n_values": writer.n_values(),
                   "status": "running", "created_at": utcnow()}
            if not writer.complete:
                store.catalog.write("maps", part, [row])
                model = finetuned
                if role == "pretrained":  # the encoder before fine-tuning (its classifier head plays no part)
                    model = load_classifier(plan.model.path, plan.task.num_labels,
                                            plan.task.label_kind == "regression", seed=s.seed)
                elif model is None:  # a unit of its own: the weights as stored (computing in float32, so the same maps)
                    model = load_finetuned(store.model_dir(run_id))
                bar = self._bar(f"maps ({role})", n, int(writer.done.sum()))
                started = time.perf_counter()
                extract_maps(model, self.dev_data, writer, self.device, s.extract_batch_size,
                             on_batch=lambda k: self._advance(bar, k))
                row["extract_seconds"] = time.perf_counter() - started
        size = storage_bytes(store.maps_path(map_id))
        store.catalog.write("maps", part, [{**row, "status": "done", "bytes": size}])
        self._say(
            f"{role} maps: {n} examples x {plan.model.n_layers * plan.model.n_heads} heads, "
            f"{size / 1e6:.1f} MB ({size / max(row['n_values'], 1):.2f} bytes a value)"
        )


    # -- the norms of a map set stored without them ---------------------------

    def add_norms(self, role: str) -> None:
        """Run the role's model over the stored inputs again and write only the norms ||f(x_j)||; resumable."""
        plan, store, s = self.plan, self.store, self.plan.settings
        map_id, run_id = plan.map_ids[role], plan.run_ids["finetuned"]
        with store.lock(map_id, f"map set {map_id}"):
            with store.norm_writer(map_id) as writer:
                if writer.complete:
                    return
                n = len(writer.lengths)
                if not np.array_equal(self.dev_data.lengths[:n], writer.lengths):
                    raise UserError(f"the {role} maps of run {run_id} were made from other dev inputs than this "
                                    f"ingest's; run `bertsecrets check --repair` to redo them")
                if role == "pretrained":  # the encoder before fine-tuning, as when the maps were made
                    model = load_classifier(plan.model.path, plan.task.num_labels,
                                            plan.task.label_kind == "regression", seed=s.seed)
                else:  # the weights as stored, as the maps were made from
                    if not store.has_model(run_id):
                        raise UserError(f"run {run_id} has no stored weights to add the norms with: "
                                        "run `bertsecrets check --repair`")
                    model = load_finetuned(store.model_dir(run_id))
                already = int(writer.done.sum())  # a repaired map set lacks only the norms of its lost chunks
                bar = self._bar(f"norms ({role})", n, already)
                started = time.perf_counter()
                extract_norms(model, self.dev_data, writer, self.device, s.extract_batch_size,
                              on_batch=lambda k: self._advance(bar, k))
            # The catalog's size of the map set now counts its norms, as a fresh extraction's does.
            part = plan.map_part(role)
            table = store.catalog.read_part("maps", part)
            if table is not None and table.num_rows:
                size = storage_bytes(store.maps_path(map_id))
                store.catalog.write("maps", part, [{**r, "bytes": size} for r in table.to_pylist()])
        added = f"{n} inputs" if not already else f"{n - already} of {n} inputs"
        self._say(f"norms added to the {role} maps: {added} ({fmt_seconds(time.perf_counter() - started)})")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
