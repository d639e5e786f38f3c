"""The grid on Dask: the store a cluster makes is the serial one; killed workers and drivers; the checks before work."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from bertsecrets.cli import main
from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import IngestSettings
from bertsecrets.ingest import cluster
from bertsecrets.ingest.plan import make_plan
from bertsecrets.store import Store
from bertsecrets.store.check import check_store
from bertsecrets.store.schema import TABLES

ROOT = Path(__file__).resolve().parent.parent
#: Long enough a fine-tune (6 steps an epoch, a checkpoint after each) to be killed in the middle of it.
GRID = dict(epochs=8, batch_size=8, max_examples=8, eval_batch_size=16, extract_batch_size=4, checkpoint_seconds=0.0,
            setups=("finetuned", "no_finetuning"))
SEEDS = (0, 1)  # two seeds share one pretrained map set


def _args(tiny_bert, tiny_glue, root) -> list[str]:
    return ["ingest", "mrpc", "--seeds", ",".join(map(str, SEEDS)), "--model", str(tiny_bert), "--data-dir",
            str(tiny_glue), "--store", str(root), "--epochs", "8", "--batch-size", "8", "--max-examples", "8",
            "--eval-batch-size", "16", "--extract-batch-size", "4", "--checkpoint-every", "0",
            "--setups", "finetuned,no_finetuning"]


@pytest.fixture(scope="module")
def serial_grid(tiny_bert, tiny_glue, tmp_path_factory):
    """The grid ingested in this process, one run after another, with the compute threads a worker of two gets."""
    import torch

    from bertsecrets.ingest.grid import run_grid

    root = tmp_path_factory.mktemp("serial") / "store"
    base = IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(root), **GRID)
    threads = torch.get_num_threads()
    # CPU kernels may sum in another order with another thread count: the last bits of the weights would differ.
    torch.set_num_threads(cluster.threads_per_worker(2))
    try:
        outcomes = run_grid(base, ["mrpc"], list(SEEDS), {}, Console(file=io.StringIO()))
    finally:
        torch.set_num_threads(threads)
    assert [o.status for o in outcomes] == ["done", "done"]
    return root


def _without_times(table: str) -> list[str]:
    return [f.name for f in TABLES[table] if not (f.name.endswith("_at") or f.name.endswith("seconds")
                                                 or f.name == "settings_json")]


def assert_same_store(a: Path, b: Path) -> None:
    """Same run ids, metrics, predictions, catalog rows (but times), map bytes and weights."""
    sa, sb = Store.open(a), Store.open(b)
    for table in TABLES:
        columns = ", ".join(_without_times(table))
        query = f"SELECT {columns} FROM {table} ORDER BY ALL"
        assert sa.rows(query) == sb.rows(query), table
    runs = sa.rows("SELECT run_id, setup, status FROM runs")
    assert len(runs) == 2 * len(SEEDS) and {r["status"] for r in runs} == {"done"}
    assert sa.rows("SELECT count(*) AS n FROM ablation")[0]["n"] > 0 and sa.rows("SELECT count(*) AS n FROM head_stats")[0]["n"] > 0
    files = sorted(p.relative_to(a) for folder in ("maps", "runs") for p in (a / folder).rglob("*")
                   if p.is_file() and p.name != "checkpoint.pt")
    assert files == sorted(p.relative_to(b) for folder in ("maps", "runs") for p in (b / folder).rglob("*")
                           if p.is_file() and p.name != "checkpoint.pt")
    assert any(f.name.endswith(".safetensors") for f in files) and any(".zarr" in str(f) for f in files)
    different = [str(f) for f in files if (a / f).read_bytes() != (b / f).read_bytes()]
    assert different == []
    assert check_store(sb, deep=True)[0] == []


# -- the serial path stays as it was -----------------------------------------------------------


@pytest.mark.slow
def test_a_plain_ingest_never_loads_dask(tiny_bert, tiny_glue, tmp_path):
    root = tmp_path / "store"
    code = (
        "import sys\nfrom bertsecrets.cli import main\n"
        f"args = ['ingest', 'mrpc', '--model', {str(tiny_bert)!r}, '--data-dir', {str(tiny_glue)!r}, "
        f"'--store', {str(root)!r}, '--epochs', '1', '--max-examples', '4', '--setups', 'finetuned']\n"
        "assert main(args) == 0\n"
        "print('WORK:', *(m for m in ('dask', 'distributed') if m in sys.modules))\n"
        "assert main(args) == 0\n"
        "print('AGAIN:', *(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nothing to do" in result.stdout
    lines = [x for x in result.stdout.splitlines() if x.startswith(("WORK:", "AGAIN:"))]
    assert lines == ["WORK:", "AGAIN:"]  # no Dask module after the work, nor after the finished ingest


# -- pieces -------------------------------------------------------------------------------------


def test_the_cores_are_shared_out_among_the_workers():
    assert cluster.threads_per_worker(2, 2) == 1
    assert cluster.threads_per_worker(3, 16) == 5 and cluster.threads_per_worker(4, 16) == 4
    assert cluster.threads_per_worker(8, 4) == 1  # more workers than cores: one thread each, never none
    for workers in range(1, 17):
        assert workers * cluster.threads_per_worker(workers, 16) <= 16


def test_sweeps_are_cut_only_to_keep_the_workers_busy():
    assert cluster.sweep_pieces(workers=2, sweeps=4, n_layers=6) == 1  # the runs keep them busy: whole sweeps
    assert cluster.sweep_pieces(workers=8, sweeps=2, n_layers=6) == 4
    assert cluster.sweep_pieces(workers=64, sweeps=1, n_layers=12) == 12  # at most one piece a layer
    assert cluster.sweep_pieces(workers=3, sweeps=0, n_layers=6) == 3


def test_a_worker_reports_its_bars_and_lines():
    sent = []
    progress = cluster.RemoteProgress(sent.append)
    bar = progress.add_task("fine-tuning (finetuned)", total=100, info="")
    for _ in range(99):
        progress.update(bar, advance=1, info="loss 0.5")
    progress.advance(bar, 1)
    # The start and the end always; between them at most one every SEND_EVERY seconds.
    assert sent[0] == {"bar": 0, "description": "fine-tuning (finetuned)", "total": 100, "completed": 0.0, "info": ""}
    assert sent[-1]["completed"] == 100 and sent[-1]["info"] == "loss 0.5"
    assert 2 <= len(sent) < 10
    lines = []
    out = Console(file=cluster._Lines(lines.append), width=200, color_system=None, force_terminal=False)
    out.print("[green]✓[/] dev f1 80.0")
    out.print(Text("run [/x] of a person"), "two\nlines")
    assert lines == [{"line": "✓ dev f1 80.0"}, {"line": "run [/x] of a person two"}, {"line": "lines"}]


def test_a_worker_that_sees_another_folder_or_no_model_is_told(tiny_store, tmp_path, tiny_bert):
    store, _ = tiny_store
    (store.root / "locks").mkdir(exist_ok=True)
    token_path = store.root / "locks" / ".probe-test"
    token_path.write_text("abc")
    try:
        ok = cluster.probe(str(store.root), token_path.name, "abc", [str(tiny_bert)], "cpu", _version())
        assert ok["problem"] is None and (ok["device"], ok["dtype"]) == ("cpu", "float32")
        # The same path on another machine holding another store: the token differs.
        assert "sees another folder" in cluster.probe(str(store.root), token_path.name, "xyz", [], "cpu", _version())["problem"]
        assert "cannot see the store" in cluster.probe(str(tmp_path / "absent"), token_path.name, "abc", [], "cpu",
                                                       _version())["problem"]
        assert "cannot see the model folder" in cluster.probe(str(store.root), token_path.name, "abc",
                                                              [str(tmp_path / "model")], "cpu", _version())["problem"]
        assert "runs bertsecrets" in cluster.probe(str(store.root), token_path.name, "abc", [], "cpu", "0.0.1")["problem"]
    finally:
        token_path.unlink()


def _version() -> str:
    from bertsecrets.core.version import __version__

    return __version__


class _FakeClient:
    """A client whose workers answer the probe as given (one of them on a machine without the store)."""

    def __init__(self, answers, resources=None):
        self.answers, self.resources = answers, resources or {}

    def run(self, fn, *args):
        return {address: answer(*args) if callable(answer) else answer for address, answer in self.answers.items()}

    def scheduler_info(self, n_workers=None):
        return {"workers": {a: {"resources": self.resources.get(a, {})} for a in self.answers}}


def test_check_workers_fails_the_ingest_in_one_line_before_any_work(tiny_store):
    store, _ = tiny_store
    blind = {"host": "node7", "problem": f"cannot see the store at {store.root}"}
    fake = cluster.Cluster(_FakeClient({"tcp://10.0.0.1:1": cluster.probe, "tcp://10.0.0.7:1": blind}))
    with pytest.raises(UserError) as caught:
        cluster.check_workers(fake, store, "cpu")
    message = str(caught.value)
    assert "\n" not in message and "tcp://10.0.0.7:1 on node7 cannot see the store" in message
    assert "file system every worker sees" in message
    assert not list((store.root / "locks").glob(".probe-*"))  # the token is gone again
    # All see it: their compute comes back; workers computing differently are refused.
    fake = cluster.Cluster(_FakeClient({"tcp://a:1": cluster.probe, "tcp://b:1": cluster.probe}))
    assert (cluster.check_workers(fake, store, "cpu").device, cluster.check_workers(fake, store, "cpu").dtype) == ("cpu", "float32")
    gpu = {"host": "g", "problem": None, "device": "cuda", "dtype": "bfloat16"}
    mixed = cluster.Cluster(_FakeClient({"tcp://a:1": cluster.probe, "tcp://g:1": gpu}))
    with pytest.raises(UserError, match="different devices"):
        cluster.check_workers(mixed, store, "auto")
    # Where some workers offer a GPU, theirs is the compute (the model's units run only there).
    mixed = cluster.Cluster(_FakeClient({"tcp://a:1": cluster.probe, "tcp://g:1": gpu}, {"tcp://g:1": {"GPU": 1}}),
                            gpu_resources=True)
    assert cluster.check_workers(mixed, store, "auto").device == "cuda"


class _RecordingClient:
    """Takes the units submitted and keeps, for each, the futures it was told to wait for."""

    class Future:
        def __init__(self, key):
            self.key = key

        def add_done_callback(self, fn):
            pass

    def __init__(self):
        self.after: dict[str, list[str]] = {}

    def submit(self, fn, fn_, unit, threads, args, after, key, resources, priority, pure):
        self.after[key] = [f.key for f in after]
        return self.Future(key)


def test_post_steps_wait_for_the_norms_they_read_and_seeds_add_shared_norms_once(tiny_store, tiny_bert, tiny_glue):
    """On an older store the backfill adds the norms: the analyses read them, so they wait for it; and the
    seeds share the pretrained map set, so only the first seed's backfill writes its norms, the others wait."""
    from tests.conftest import TINY_INGEST

    store, _ = tiny_store
    client = _RecordingClient()
    submitter = cluster.Submitter(cluster.Cluster(client), store, cluster.GridView(Console(file=io.StringIO())))
    plans = [make_plan(IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), seed=seed,
                                      store=str(store.root), **TINY_INGEST)) for seed in (0, 1)]
    assert plans[0].map_ids["pretrained"] == plans[1].map_ids["pretrained"]
    for plan in plans:
        cell = cluster.Cell("mrpc", plan.settings.seed, plan.settings, plan)
        finished = [client.Future(f"finish-{plan.run_ids['finetuned']}")]  # a run made now: every step to do
        submitter.post_steps(cell, plan, finished)
    first, second = (p.run_ids["finetuned"] for p in plans)
    assert client.after[f"analyses-{first}"] == [f"finish-{first}", f"norms-{first}"]
    assert client.after[f"analyses-{second}"] == [f"finish-{second}", f"norms-{second}"]
    assert client.after[f"norms-{first}"] == [f"finish-{first}"]
    assert client.after[f"norms-{second}"] == [f"finish-{second}", f"norms-{first}"]
    assert f"norms-{first}" not in client.after[f"ablation-{second}"]  # the sweep reads no norms


def _files(root) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_a_scheduler_that_cannot_be_reached_is_one_line(tiny_store, capsys):
    store, _ = tiny_store
    before = _files(store.root)
    code = main(["ingest", "mrpc", "--store", str(store.root), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert _files(store.root) == before  # the store untouched


def test_a_scheduler_that_cannot_be_reached_leaves_no_new_store(tiny_bert, tiny_glue, tmp_path, capsys):
    root = tmp_path / "new" / "store"
    code = main(["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(tiny_glue), "--store", str(root),
                 "--scheduler", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err
    assert list(tmp_path.iterdir()) == []  # neither the store nor a folder above it


def test_local_workers_that_cannot_start_are_one_line_and_leave_no_new_store(tiny_bert, tiny_glue, tmp_path, capsys,
                                                                              monkeypatch):
    import distributed

    def fails(*args, **kwargs):
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr(distributed, "LocalCluster", fails)
    root = tmp_path / "new" / "store"
    code = main(["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(tiny_glue), "--store", str(root),
                 "--workers", "2"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.splitlines() == ["error: cannot start 2 local Dask workers (Nanny failed to start.): try "
                                              "fewer --workers, or leave --workers out to run in this process"]
    assert list(tmp_path.iterdir()) == []  # neither the store nor a folder above it


def test_a_running_cluster_checks_the_store_then_finds_nothing_to_do(tiny_store, tiny_bert, tiny_glue, capsys):
    from distributed import LocalCluster

    from tests.conftest import TINY_INGEST

    store, _ = tiny_store
    options = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_INGEST.items()]
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as local:
        code = main(["ingest", "mrpc", "--model", str(tiny_bert), "--data-dir", str(tiny_glue), "--store",
                     str(store.root), "--scheduler", local.scheduler_address, *options])
    out = capsys.readouterr().out
    assert code == 0 and "nothing to do" in out and "Table 1" in out


# -- the whole grid on a cluster ---------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_make_the_store_a_serial_ingest_makes(serial_grid, tiny_bert, tiny_glue, tmp_path, capsys,
                                                          monkeypatch):
    root = tmp_path / "store"
    # Each sweep in pieces, joined by a unit of its own (with two runs on two workers it would be one unit).
    monkeypatch.setattr(cluster, "sweep_pieces", lambda workers, sweeps, n_layers: 2)
    assert main([*_args(tiny_bert, tiny_glue, root), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "disabling heads and layers (piece 2 of 2" in out
    assert "2 local worker processes" in out and "grid: units of work" in out
    assert_same_store(serial_grid, root)
    # One pretrained map set for both seeds, made once.
    assert len(list((root / "maps").glob("*.zarr"))) == 3
    assert out.count("pretrained maps:") == 2


def _cli(args, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "bertsecrets", *args], cwd=log.parent, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True)


def _wait(proc: subprocess.Popen, until, seconds: float = 90) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if until():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_a_killed_driver_resumes(serial_grid, tiny_bert, tiny_glue, tmp_path):
    """SIGKILL the worker in the middle of a fine-tune, then the driver; the same command ends with the serial store."""
    root = tmp_path / "store"
    args = [*_args(tiny_bert, tiny_glue, root), "--workers", "2"]
    plan = make_plan(IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), **GRID))
    run_id = plan.run_ids["finetuned"]
    checkpoint, lock = root / "runs" / run_id / "checkpoint.pt", root / "locks" / f"{run_id}.lock"

    first = _cli(args, tmp_path / "first.log")
    try:
        assert _wait(first, lambda: checkpoint.exists() and "pid" in lock.read_text()), "the fine-tune never started"
        worker = int(re.search(r"pid (\d+)", lock.read_text()).group(1))
        assert worker != first.pid
        os.kill(worker, signal.SIGKILL)  # a worker dies in the middle of the fine-tune
        # Its unit runs again on a worker (the other, or its replacement) and finishes the run from the checkpoint.
        assert _wait(first, lambda: (root / "tables" / "maps" / f"{run_id}-finetuned.parquet").exists()), \
            (tmp_path / "first.log").read_text()[-3000:]
        first.send_signal(signal.SIGKILL)  # then the driver dies, its workers with it
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    log = (tmp_path / "first.log").read_text()
    assert "resuming" in log and re.search(r"resumed at step [1-9]", log), log[-3000:]
    runs = {r["run_id"]: r for r in Store.open(root).rows("SELECT run_id, status FROM runs")}
    assert runs[run_id]["status"] != "done"  # stopped before the run was finished

    second = _cli(args, tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert_same_store(serial_grid, root)
    weights = json.loads((root / "runs" / run_id / "model" / "bertsecrets-manifest.json").read_text())
    assert "model.safetensors" in weights["files"]
    assert not checkpoint.exists()
