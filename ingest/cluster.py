"""The grid on Dask distributed: a `LocalCluster` of N processes or a running cluster, its units as futures, one view.

`bertsecrets ingest TASK... --workers N` starts N worker processes on this
machine; ``--scheduler ADDRESS`` uses a running cluster. Either way the grid
becomes the units of ``ingest/units.py`` (fine-tune and evaluate a run,
extract a map set, finish a run, analyse it, a piece of its head-disabling
sweep, ...), each submitted with the futures of the units it needs, so Dask
runs whatever is ready wherever a worker is free, and reruns on another
worker the unit of one that died (a fine-tune resumes from its checkpoint).

Every unit writes its own files straight into the store; the driver (this
process) writes only the store's marker and the failures it is told of,
after the failed run's units have all stopped. Before any work, each worker
proves that it sees this very store (it reads a token the driver wrote) and
can write to it, and the model's folder; the first that cannot fails the
ingest in one line. Workers report their steps as Dask events: the driver
shows them in one Rich view, a bar per step under way, with the grid's
count of units above.

This module is imported only with ``--workers`` or ``--scheduler``: a plain
ingest never loads Dask.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.text import Text

from bertsecrets.core import config
from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import IngestSettings
from bertsecrets.core.tasks import ROLES, get_task
from bertsecrets.ingest import units
from bertsecrets.ingest.pipeline import POST_STEPS, Outcome, describe, is_done, map_done, run_done
from bertsecrets.ingest.plan import Compute, Plan, make_plan, resolve_compute
from bertsecrets.ingest.progress import fmt_seconds, make_progress
from bertsecrets.store import Store
from bertsecrets.store.errors import writing
from bertsecrets.store.store import MARKER

try:
    import distributed
except ImportError:  # pragma: no cover - the cluster extra is part of the dev install
    distributed = None

#: The Dask event topic the workers' steps are reported on.
TOPIC = "bertsecrets-progress"
#: Seconds to wait for a running cluster to have a worker.
WORKERS_TIMEOUT = 60
#: A bar is sent at most this often (seconds), and at its start and end.
SEND_EVERY = 0.5


# -- on a worker ----------------------------------------------------------------------------


class _Lines:
    """A file for a worker's console: each whole line it prints goes to the grid's view."""

    def __init__(self, send: Callable[[dict], None]) -> None:
        self.send, self.pending = send, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.send({"line": line.rstrip()})
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class RemoteProgress:
    """The part of Rich's `Progress` the steps call, sending each bar's state to the grid's view."""

    def __init__(self, send: Callable[[dict], None]) -> None:
        self.send = send
        self.bars: dict[int, dict[str, Any]] = {}
        self.sent: dict[int, float] = {}

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        task_id = len(self.bars)
        self.bars[task_id] = {"bar": task_id, "description": str(description), "total": total,
                              "completed": float(completed), "info": str(fields.get("info", ""))}
        self._send(task_id, force=True)
        return task_id

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, **fields: Any) -> None:
        bar = self.bars[task_id]
        if total is not None:
            bar["total"] = total
        if completed is not None:
            bar["completed"] = float(completed)
        if advance:
            bar["completed"] += advance
        if description is not None:
            bar["description"] = str(description)
        if "info" in fields:
            bar["info"] = str(fields["info"])
        self._send(task_id)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _send(self, task_id: int, force: bool = False) -> None:
        bar, now = self.bars[task_id], time.monotonic()
        finished = bar["total"] is not None and bar["completed"] >= bar["total"]
        if force or finished or now - self.sent.get(task_id, 0.0) >= SEND_EVERY:
            self.sent[task_id] = now
            self.send(dict(bar))


def run_unit(fn: Callable, unit: str, threads: int | None, args: tuple, after: list) -> Any:
    """Run one unit on this worker: its compute threads and GPU set, its lines and bars sent to the driver.

    ``after``: the results of the units this one waits for (Dask hands them in
    once they are done; the unit reads what they made from the store).
    """
    try:
        worker = distributed.get_worker()
    except ValueError:  # not on a worker (a unit called in the driver's process)
        worker = None

    def send(message: dict) -> None:
        if worker is not None:
            worker.log_event(TOPIC, {"unit": unit, **message})

    _set_up(worker, threads)
    console = Console(file=_Lines(send), width=160, color_system=None, force_terminal=False, highlight=False,
                      soft_wrap=True)
    return fn(*args, console, RemoteProgress(send))


def _set_up(worker: Any, threads: int | None) -> None:
    import torch

    wanted = threads or config.worker_threads()
    if wanted and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    # The workers of a LocalCluster are named 0..N-1: they take the GPUs in turn, several to a GPU.
    if worker is not None and isinstance(worker.name, int) and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if count > 1:
            torch.cuda.set_device(worker.name % count)


def probe(root: str, token_name: str, token: str, model_paths: list[str], device: str, version: str) -> dict:
    """On a worker: whether it sees this very store (the driver's token), can write there, and sees the models."""
    from bertsecrets.core.version import __version__

    host = socket.gethostname()
    folder = Path(root)
    if not (folder / MARKER).is_file():
        return {"host": host, "problem": f"cannot see the store at {root}"}
    try:
        seen = (folder / "locks" / token_name).read_text()
    except OSError:
        seen = None
    if seen != token:
        return {"host": host, "problem": f"sees another folder at {root}, not the store this ingest writes"}
    mine = folder / "locks" / f".probe-{uuid.uuid4().hex}"
    try:
        mine.write_text(host)
        mine.unlink()
    except OSError as exc:
        return {"host": host, "problem": f"cannot write into the store at {root} ({exc.strerror})"}
    for path in model_paths:
        if not (Path(path) / "config.json").is_file():
            return {"host": host, "problem": f"cannot see the model folder {path}"}
    if version != __version__:
        return {"host": host, "problem": f"runs bertsecrets {__version__}, not {version} as this machine does"}
    compute = resolve_compute(device)
    return {"host": host, "problem": None, "device": compute.device, "dtype": compute.dtype}


# -- the cluster ------------------------------------------------------------------------------


def cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, n_cores: int | None = None) -> int:
    """Compute threads of each of ``workers`` processes so that together they use the cores, never more (at least 1)."""
    return max(1, (n_cores or cores()) // workers)


@dataclass
class Cluster:
    """A Dask client on a cluster: a LocalCluster started here, or a running one."""

    client: Any
    local: Any = None
    threads: int | None = None  # compute threads a unit uses; None: the worker's own setting
    gpu_resources: bool = False  # whether units that use the model ask for a worker's "GPU" resource

    @property
    def dashboard(self) -> str | None:
        services = self.client.scheduler_info().get("services", {})
        return self.client.dashboard_link if "dashboard" in services else None

    def workers(self) -> dict[str, dict]:
        return self.client.scheduler_info(n_workers=-1).get("workers", {})


def _need_dask() -> None:
    if distributed is None:
        raise UserError("--workers and --scheduler need Dask: pip install 'bertsecrets[cluster]'")


@contextlib.contextmanager
def local_cluster(workers: int, gpu: bool, console: Console) -> Iterator[Cluster]:
    """N worker processes on this machine, one unit at a time each, the cores shared out among them."""
    _need_dask()
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    threads = threads_per_worker(workers)
    if workers > cores():
        console.print(Text.assemble(("note:", "yellow"), f" {workers} workers on {cores()} cores: one compute "
                                    "thread each, and more processes than cores"), highlight=False)
    import dask

    # The workers' environment as Dask makes it, but for the compute threads, and without its
    # MALLOC_TRIM_THRESHOLD_: it makes glibc return every freed block of a fine-tune to the system
    # and take it back, tripling the system time of training (measured: 1.4 s -> 4.3 s, wall +30%).
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    environ.update({name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    with contextlib.ExitStack() as stack:
        stack.enter_context(dask.config.set({"distributed.nanny.pre-spawn-environ": environ}))
        try:
            local = stack.enter_context(distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                resources={"GPU": 1} if gpu else None, dashboard_address=":8787"))
        except (OSError, RuntimeError, TimeoutError) as exc:  # a worker process that did not come up
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise UserError(f"cannot start {workers} local Dask worker{'s' if workers != 1 else ''} ({reason}): "
                            "try fewer --workers, or leave --workers out to run in this process") from None
        client = stack.enter_context(distributed.Client(local))
        yield Cluster(client, local, threads, gpu)


@contextlib.contextmanager
def remote_cluster(address: str) -> Iterator[Cluster]:
    """The running cluster whose scheduler is at ``address``."""
    _need_dask()
    try:
        client = distributed.Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: an address of no known protocol
        raise UserError(f"cannot reach the Dask scheduler at {address} ({' '.join(str(exc).split()) or type(exc).__name__}): "
                        "start it with `dask scheduler` and give its address (tcp://HOST:8786)") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
        except TimeoutError:
            raise UserError(f"the Dask scheduler at {address} has no workers after {WORKERS_TIMEOUT} s: start some "
                            f"with `dask worker {address}`") from None
        cluster = Cluster(client)
        cluster.gpu_resources = any("GPU" in w.get("resources", {}) for w in cluster.workers().values())
        yield cluster


def check_workers(cluster: Cluster, store: Store, device: str, model_paths: list[str] = ()) -> Compute:
    """Before any work: every worker sees and may write this store and sees the models; the compute they share.

    The driver writes a random token into the store; a worker that reads
    another (or none) sees another folder at that path, not this store.
    """
    from bertsecrets.core.version import __version__

    token, name = uuid.uuid4().hex, f".probe-{uuid.uuid4().hex}"
    path = store.root / "locks" / name
    with writing(path.parent):
        path.parent.mkdir(exist_ok=True)
        path.write_text(token)
    try:
        answers = cluster.client.run(probe, str(store.root), name, token, [str(p) for p in model_paths], device,
                                     __version__)
    finally:
        path.unlink(missing_ok=True)
    bad = [(address, a) for address, a in sorted(answers.items()) if a["problem"]]
    if bad:
        address, answer = bad[0]
        more = f" (and {len(bad) - 1} more workers)" if len(bad) > 1 else ""
        raise UserError(f"worker {address} on {answer['host']} {answer['problem']}{more}: the store and the model must "
                        "be on a file system every worker sees at the same path (NFS, Lustre, a shared volume)")
    workers = cluster.workers()
    # Where some workers offer a GPU, the model's units run only there: their compute is the one that counts.
    deciding = {a: answers[a] for a in answers if not cluster.gpu_resources or "GPU" in workers.get(a, {}).get("resources", {})}
    computes = sorted({(a["device"], a["dtype"]) for a in deciding.values()})
    if len(computes) > 1:
        shown = ", ".join(f"{d} {t}" for d, t in computes)
        raise UserError(f"the workers would compute on different devices ({shown}), which makes different runs: pass "
                        "--device cpu, or start the workers alike (a GPU worker with --resources GPU=1)")
    return Compute(*computes[0])


# -- the grid's view ---------------------------------------------------------------------------


class GridView:
    """One Rich view of the grid: a bar per step under way (run, step, done/total, ETA), the units done on top."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress = make_progress(console)
        self.overall = self.progress.add_task("grid: units of work done", total=0, info="")
        self.labels: dict[str, str] = {}
        self.bars: dict[tuple[str, int], TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> "GridView":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def expect(self, unit: str, label: str) -> None:
        with self.lock:
            self.labels[unit] = label
            self.progress.update(self.overall, total=len(self.labels))

    def event(self, event: tuple[float, dict]) -> None:
        """A worker's report (called on the client's thread)."""
        message = event[1]
        unit = message.get("unit", "")
        with self.lock:
            label = self.labels.get(unit, unit)
            if "line" in message:
                self.progress.console.print(Text(f"{label}: {message['line'].strip()}"), highlight=False)
                return
            key = (unit, int(message["bar"]))
            description = f"{label}: {message['description']}"
            if key not in self.bars:
                self.bars[key] = self.progress.add_task(description, total=message["total"],
                                                        completed=message["completed"], info=message["info"])
            else:
                self.progress.update(self.bars[key], description=description, total=message["total"],
                                     completed=message["completed"], info=message["info"])

    def unit_done(self, unit: str) -> None:
        with self.lock:
            for key in [k for k in self.bars if k[0] == unit]:
                self.progress.remove_task(self.bars.pop(key))
            self.progress.advance(self.overall)


# -- the grid ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """One task and seed of the grid: its settings, plan and the futures of its units."""

    task: str
    seed: int
    settings: IngestSettings
    plan: Plan | None = None
    futures: list[tuple[str, Any]] = field(default_factory=list)  # (unit, future), in the order submitted
    outcome: Outcome | None = None
    started: float = field(default_factory=time.perf_counter)
    finished: float = 0.0

    @property
    def label(self) -> str:
        return f"{get_task(self.task).title} seed {self.seed}"


#: Higher runs first among units that are ready: fine-tunes are the long poles, short closing units free the rest.
PRIORITY = {"train": 30, "finish": 40, "write_sweep": 40, "maps": 20, "sweep": 15, "importance": 15,
            "pruning": 15, "post": 10}


class Submitter:
    """Turns the cells of a grid into units on the cluster, each with the futures of what it needs."""

    def __init__(self, cluster: Cluster, store: Store, view: GridView) -> None:
        self.cluster, self.store, self.view = cluster, store, view
        self.root = str(store.root)
        self.shared_maps: dict[str, Any] = {}  # map_id -> the future of the unit that makes the set
        self.shared_norms: dict[str, Any] = {}  # pretrained map_id -> the future of the first backfill adding its norms
        self.sweep_pieces = 1  # see ``sweep_pieces``

    def submit(self, cell: Cell, kind: str, unit: str, fn: Callable, args: tuple, after: list,
               model: bool = True) -> Any:
        self.view.expect(unit, cell.label)
        resources = {"GPU": 1} if model and self.cluster.gpu_resources else None
        future = self.cluster.client.submit(run_unit, fn, unit, self.cluster.threads, args, after, key=unit,
                                            resources=resources, priority=PRIORITY[kind], pure=False)

        def done(_future: Any, cell: Cell = cell) -> None:
            cell.finished = time.perf_counter()
            self.view.unit_done(unit)

        future.add_done_callback(done)
        cell.futures.append((unit, future))
        return future

    def cell(self, cell: Cell) -> None:
        """Submit what a cell's plan still needs, in the order a serial ingest does it."""
        plan, store = cell.plan, self.store
        assert plan is not None
        light = units.without_training_data(plan)
        setups = plan.settings.setups
        ids = plan.run_ids
        trained: dict[str, Any] = {}
        for setup in ("finetuned", "no_finetuning", "random_init"):
            if setup in setups and not run_done(store, plan, setup):
                trained[setup] = self.submit(cell, "train", f"train-{ids[setup]}", units.train,
                                             (self.root, plan, setup), [])
        if "finetuned" not in setups:
            return
        ft = ids["finetuned"]
        finished: list[Any] = []
        if "finetuned" in trained:
            made = {}
            for role in ROLES:
                if map_done(store, plan, role):
                    continue
                after = [trained["finetuned"]] if role == "finetuned" else []
                shared = self.shared_maps.get(plan.map_ids[role])
                if shared is not None:  # the pretrained set of another seed: made once, then recorded here
                    after.append(shared)
                made[role] = self.submit(cell, "maps", f"maps-{role}-{ft}", units.maps, (self.root, light, role), after)
                self.shared_maps.setdefault(plan.map_ids[role], made[role])
            finished = [self.submit(cell, "finish", f"finish-{ft}", units.finish, (self.root, light, "finetuned"),
                                    [trained["finetuned"], *made.values()], model=False)]
        self.post_steps(cell, light, finished)

    def post_steps(self, cell: Cell, plan: Plan, finished: list[Any]) -> None:
        from bertsecrets.ingest import ablation, analyses, backfill

        run_id, s = plan.run_ids["finetuned"], plan.settings
        fresh = bool(finished)  # the run is being made now: every step after it is to do
        norms: list[Any] = []  # the backfill this run's analyses wait for: they read the norms it adds
        for step in POST_STEPS:
            if not fresh and step.done(self.store, plan):
                continue
            if step is not ablation or self.sweep_pieces == 1:  # the step as one unit, as in one process
                after = list(finished)
                if step is analyses:
                    after += norms
                shared = plan.map_ids["pretrained"]
                if step is backfill and shared in self.shared_norms:
                    # The seeds share the pretrained map set: its norms are added once, by the first seed's unit.
                    after.append(self.shared_norms[shared])
                future = self.submit(cell, "post", f"{step.NAME}-{run_id}", units.post_step,
                                     (self.root, plan, step.NAME), after, model=step in (ablation, backfill))
                if step is backfill:
                    norms = [future]
                    self.shared_norms.setdefault(shared, future)
                continue
            device, batch, pieces = s.device, min(s.eval_batch_size, 32), self.sweep_pieces
            missing = {t for t in ablation.TABLES if fresh or not self.store.catalog.has_part(t, run_id)}
            if "ablation" in missing:
                parts = [self.submit(cell, "sweep", f"sweep-{i}-{run_id}", units.sweep_part,
                                     (self.root, run_id, i, pieces, device, batch), finished)
                         for i in range(len(ablation.sweep_parts(plan.model.n_layers, plan.model.n_heads, pieces)))]
                self.submit(cell, "write_sweep", f"write_sweep-{run_id}", units.write_sweep,
                            (self.root, run_id, pieces, parts), [], model=False)
            importance = finished
            if "head_importance" in missing:
                importance = [self.submit(cell, "importance", f"importance-{run_id}", units.importance,
                                          (self.root, run_id, device, batch), finished)]
            if "pruning" in missing:
                self.submit(cell, "pruning", f"pruning-{run_id}", units.pruning, (self.root, run_id, device, batch),
                            importance)


def sweep_pieces(workers: int, sweeps: int, n_layers: int) -> int:
    """Pieces to cut each run's sweep into: enough that ``sweeps`` runs' pieces keep ``workers`` busy, no more.

    Each piece loads the run's model and repeats the clean pass up to its first
    layer: where there are as many runs as workers, the whole sweep is one unit.
    """
    return max(1, min(n_layers, -(-workers // max(1, sweeps))))


def _message(unit: str, exc: BaseException) -> str:
    """One line for a unit that failed."""
    if isinstance(exc, UserError):
        return str(exc)
    if distributed is not None and isinstance(exc, distributed.KilledWorker):
        return (f"the workers running {unit} died each time it was tried (out of memory? killed?); "
                "the same command resumes it")
    text = " ".join(str(exc).split())
    return f"{unit}: {type(exc).__name__}: {text}"[:2000]


def _record_failure(store: Store, plan: Plan, message: str) -> None:
    """Mark the runs of a failed cell that are not done as failed (its units have all stopped)."""
    for setup in plan.settings.setups:
        record = store.run(plan.run_ids[setup])
        if record is not None and record["status"] != "done":
            store.save_run({**record, "status": "failed", "error": message[:2000]})


def run_grid_on_cluster(base: IngestSettings, tasks: list[str], seeds: list[int], caps: dict[str, int | None],
                        console: Console, workers: int | None = None, scheduler: str | None = None) -> list[Outcome]:
    """The grid of ``tasks`` x ``seeds`` on a cluster: ``workers`` processes here, or the one at ``scheduler``."""
    _need_dask()
    cells = [Cell(task, seed, replace(base, task=task, seed=seed, max_train_examples=caps.get(task, base.max_train_examples)))
             for task in tasks for seed in seeds]
    with contextlib.ExitStack() as stack:
        cluster = None
        if scheduler is not None:
            # The cluster first: one that cannot be reached leaves no new store folder behind.
            cluster = stack.enter_context(remote_cluster(scheduler))
            store = Store.create(config.store_path(base.store))
            compute = check_workers(cluster, store, base.device)
        else:
            # A store that exists answers "nothing to do" before any worker starts; a new one is made only once
            # the workers run, so a cluster that fails to start leaves no new folder behind.
            root = config.store_path(base.store)
            store = Store.create(root) if Store.exists(root) else None
            compute = resolve_compute(base.device)
        todo = _plan_cells(cells, store, compute, console)
        if not todo:
            return [c.outcome for c in cells]
        if cluster is None:
            cluster = stack.enter_context(local_cluster(workers or 1, compute.device == "cuda", console))
            store = store or Store.create(root)
        check_workers(cluster, store, base.device, sorted({str(c.plan.model.path) for c in todo}))
        where = (f"{len(cluster.workers())} workers at {scheduler}" if scheduler else
                 f"{workers} local worker processes, {cluster.threads} compute "
                 f"thread{'s' if cluster.threads != 1 else ''} each")
        console.print(Text(f"cluster: {where}" + (f"; dashboard {cluster.dashboard}" if cluster.dashboard else "")),
                      highlight=False)
        _run(cluster, store, todo, console)
    return [c.outcome for c in cells]


def _plan_cells(cells: list[Cell], store: Store | None, compute: Compute, console: Console) -> list[Cell]:
    """Make each cell's plan; the cells with work left (the others get their outcome now). No store yet: all."""
    todo, failed_tasks = [], {}
    for cell in cells:
        if cell.task in failed_tasks:  # the task cannot start: the same for every seed, said once
            cell.outcome = Outcome(cell.task, cell.seed, "failed", 0.0, failed_tasks[cell.task])
            continue
        try:
            cell.plan = make_plan(cell.settings, compute)
        except UserError as exc:
            failed_tasks[cell.task] = str(exc)
            cell.outcome = Outcome(cell.task, cell.seed, "failed", 0.0, str(exc))
            console.print(Text.assemble(("error:", "bold red"), f" {get_task(cell.task).title}: {exc}"))
            continue
        if cell.plan.model.notice:
            console.print(Text.assemble(("note:", "yellow"), " ", cell.plan.model.notice), highlight=False)
        if store is not None and is_done(store, cell.plan):
            console.print(f"nothing to do: {cell.label} with {cell.plan.model.used} is already in the store at "
                          f"{store.root}", markup=False, highlight=False)
            cell.outcome = Outcome(cell.task, cell.seed, "done", 0.0, plan=cell.plan)
            continue
        todo.append(cell)
    return todo


def _run(cluster: Cluster, store: Store, cells: list[Cell], console: Console) -> None:
    with GridView(console) as view:
        cluster.client.subscribe_topic(TOPIC, view.event)
        submitter = Submitter(cluster, store, view)
        sweeps = [c for c in cells if "finetuned" in c.plan.settings.setups]
        if sweeps:
            submitter.sweep_pieces = sweep_pieces(len(cluster.workers()), len(sweeps), sweeps[0].plan.model.n_layers)
        try:
            for cell in cells:
                console.rule(Text(cell.label))
                describe(cell.plan, store, console)
                cell.started = time.perf_counter()
                submitter.cell(cell)
            distributed.wait([f for cell in cells for _, f in cell.futures])
        except KeyboardInterrupt:
            cluster.client.cancel([f for cell in cells for _, f in cell.futures])
            raise
        finally:
            cluster.client.unsubscribe_topic(TOPIC)
    for cell in cells:
        failed = next(((unit, f) for unit, f in cell.futures if f.status != "finished"), None)
        seconds = max(cell.finished - cell.started, 0.0)
        if failed is None:
            cell.outcome = Outcome(cell.task, cell.seed, "done", seconds, plan=cell.plan)
            continue
        message = (_message(failed[0], failed[1].exception()) if failed[1].status == "error"
                   else f"{failed[0]} was {failed[1].status}; the same command resumes it")
        _record_failure(store, cell.plan, message)
        cell.outcome = Outcome(cell.task, cell.seed, "failed", seconds, message, cell.plan)
        console.print(Text.assemble(("error:", "bold red"), f" {cell.label}: {message}"))


__all__ = ["Cluster", "GridView", "RemoteProgress", "check_workers", "local_cluster", "remote_cluster",
           "run_grid_on_cluster", "run_unit", "threads_per_worker"]
