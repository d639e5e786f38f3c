"""GLUE data: the original TSV files from a local folder, else the hub through `datasets`."""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from bertsecrets.core import config
from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import Task

HUB_DATASET = "nyu-mll/glue"


@dataclass
class Split:
    """One split: texts (b is None for single-sentence tasks) and labels (class id or score)."""

    texts_a: list[str]
    texts_b: list[str] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts_a)

    def head(self, n: int | None) -> "Split":
        if n is None or n >= len(self):
            return self
        return Split(self.texts_a[:n], None if self.texts_b is None else self.texts_b[:n], self.labels[:n])

    def take(self, indices) -> "Split":
        """The inputs at ``indices``, in that order."""
        idx = [int(i) for i in indices]
        return Split([self.texts_a[i] for i in idx], None if self.texts_b is None else [self.texts_b[i] for i in idx],
                     self.labels[idx])


@dataclass
class TaskData:
    task: Task
    train: Split
    dev: Split
    source: str
    skipped_rows: int = 0
    skipped: list[str] = field(default_factory=list)  # "file:line: why", for the run's metadata

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the texts and labels: equal data from TSV or hub gives equal runs."""
        h = hashlib.sha256()
        for split in (self.train, self.dev):
            h.update(str(len(split)).encode())
            for i in range(len(split)):
                h.update(split.texts_a[i].encode())
                h.update(b"\x00")
                if split.texts_b is not None:
                    h.update(split.texts_b[i].encode())
                h.update(b"\x01")
            h.update(np.asarray(split.labels, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]


class BadRow(UserError):
    """A row that cannot be parsed."""


_ADVICE = "fix the file or pass --skip-bad-rows to skip such rows"


def read_tsv(path: Path, task: Task, skip_bad_rows: bool = False) -> tuple[Split, list[str]]:
    """Read one GLUE TSV file of ``task``: header row, tab-separated, no quoting.

    Returns the split and the rows skipped (only with ``skip_bad_rows``; else the
    first bad row raises with its file and line number). A line that is not
    UTF-8 or holds a field over the csv module's size limit is a bad row too.
    """
    try:
        # utf-8-sig: GLUE's MRPC train.tsv starts with a byte-order mark.
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return _parse(path, fh, task, skip_bad_rows, {})
    except FileNotFoundError:
        raise UserError(f"missing data file {path}") from None
    except UnicodeDecodeError:
        pass
    # The decoder reports a byte offset inside its read buffer, not a line: read
    # the file again line by line (only now, so good files are decoded in one
    # pass) and let the parser treat each undecodable line as a bad row.
    lines, undecodable = _decode_lines(path)
    return _parse(path, lines, task, skip_bad_rows, undecodable)


def _decode_lines(path: Path) -> tuple[list[str], dict[int, str]]:
    """Every line of ``path`` decoded (an undecodable one as a blank line), and the undecodable ones by number."""
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    lines: list[str] = []
    undecodable: dict[int, str] = {}
    # bytes.splitlines breaks at \n, \r and \r\n only: the lines a file opened with newline="" yields.
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            undecodable[number] = f"not UTF-8 text (invalid byte {line[exc.start]:#04x})"
            lines.append("\n")
    return lines, undecodable


def _parse(
    path: Path, lines: Iterable[str], task: Task, skip_bad_rows: bool, undecodable: dict[int, str]
) -> tuple[Split, list[str]]:
    """The rows of ``lines`` (a TSV file's lines, header first); ``undecodable`` lines are bad rows."""
    texts: list[list[str]] = [[] for _ in task.tsv_text_columns]
    labels: list[float] = []
    skipped: list[str] = []
    label_ids = {value: i for i, value in enumerate(task.tsv_labels)}
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    if 1 in undecodable:
        raise UserError(f"{path}:1: the header is {undecodable[1]}; re-download the GLUE file")
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{path} is empty: expected a header row and {task.title} examples") from None
    except csv.Error as exc:
        raise UserError(f"{path}:1: unreadable header ({exc}); re-download the GLUE file") from None
    wanted = (*task.tsv_text_columns, task.tsv_label_column)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise UserError(f"{path} is not a {task.title} file: its header lacks {', '.join(repr(c) for c in missing)}")
    text_idx = [header.index(c) for c in task.tsv_text_columns]
    label_idx = header.index(task.tsv_label_column)
    while True:
        problem = None
        label: float | None = None
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The reader drops the rest of the offending line and goes on with the next one.
            row = None
            problem = _csv_problem(exc)
        line = reader.line_num
        if row is not None:
            if not row or (len(row) == 1 and not row[0].strip()):
                if line not in undecodable:
                    continue
                problem = undecodable[line]
            elif len(row) != len(header):
                problem = f"expected {len(header)} tab-separated fields, found {len(row)}"
            elif task.label_kind == "class":
                value = row[label_idx].strip()
                if value in label_ids:
                    label = float(label_ids[value])
                else:
                    problem = f"label {value!r} is not one of {', '.join(task.tsv_labels)}"
            else:
                try:
                    label = float(row[label_idx])
                    if not np.isfinite(label):
                        raise ValueError
                except ValueError:
                    problem = f"score {row[label_idx]!r} is not a number"
        if problem is not None:
            where = f"{path}:{line}"
            if not skip_bad_rows:
                raise BadRow(f"{where}: {problem}; {_ADVICE}")
            skipped.append(f"{where}: {problem}")
            continue
        for column, idx in zip(texts, text_idx):
            column.append(row[idx])  # type: ignore[index]
        labels.append(label)  # type: ignore[arg-type]
    if not labels:
        raise UserError(f"{path} holds no {task.title} examples")
    split = Split(texts[0], texts[1] if len(texts) > 1 else None, np.asarray(labels, dtype=np.float64))
    return split, skipped


def _csv_problem(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        # A GLUE sentence is a few hundred characters; a field this long is a broken row, not text.
        return f"a field is longer than {csv.field_size_limit():,} characters"
    return f"unreadable TSV row ({exc})"


def load_glue_dir(task: Task, folder: Path, skip_bad_rows: bool = False) -> TaskData:
    base = folder / task.glue_folder
    train_path, dev_path = base / "train.tsv", base / task.dev_file
    for path in (train_path, dev_path):
        if not path.is_file():
            raise UserError(
                f"no {task.title} data in {folder}: expected {path} (the GLUE layout <dir>/{task.glue_folder}/"
                f"train.tsv and {task.dev_file})"
            )
    train, skipped_train = read_tsv(train_path, task, skip_bad_rows)
    dev, skipped_dev = read_tsv(dev_path, task, skip_bad_rows)
    skipped = skipped_train + skipped_dev
    return TaskData(task, train, dev, source=f"glue_dir:{base.resolve()}", skipped_rows=len(skipped), skipped=skipped)


def _hub_reachable() -> bool:
    """A quick look at the hub, so an offline machine fails in a second, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0"):
        return False
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(HUB_DATASET, timeout=10)
        return True
    except Exception:
        return False


def load_hub(task: Task, hint: str = "") -> TaskData:
    import datasets

    logging.getLogger("datasets").setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    online = _hub_reachable()
    try:
        if not online:
            # Offline: the local datasets cache may still hold it.
            datasets.config.HF_HUB_OFFLINE = True
        ds = datasets.load_dataset(HUB_DATASET, task.hub_config)
    except Exception as exc:
        raise UserError(
            f"no {task.title} data{hint}: set GLUE_DIR or --data-dir to a folder in the GLUE layout "
            f"(<dir>/{task.glue_folder}/train.tsv, {task.dev_file}), or connect to the Hugging Face hub "
            f"({HUB_DATASET} {'failed' if online else 'unreachable'}: {type(exc).__name__})"
        ) from None

    def split(name: str) -> Split:
        part = ds[name]
        cols = task.hub_text_columns
        labels = np.asarray(part["label"], dtype=np.float64)
        return Split(list(part[cols[0]]), list(part[cols[1]]) if len(cols) > 1 else None, labels)

    return TaskData(task, split("train"), split(task.hub_dev_split), source=f"hub:{HUB_DATASET}/{task.hub_config}")


def load_task_data(task: Task, data_dir: str | os.PathLike | None = None, skip_bad_rows: bool = False) -> TaskData:
    """``--data-dir``, else $GLUE_DIR, else the hub; neither: one error naming both."""
    if data_dir is not None:
        return load_glue_dir(task, Path(data_dir).expanduser(), skip_bad_rows)
    folder = config.glue_dir()
    if folder is not None and (folder / task.glue_folder).is_dir():
        return load_glue_dir(task, folder, skip_bad_rows)
    hint = f" ({config.GLUE_ENV}={folder} has no {task.glue_folder} folder)" if folder is not None else ""
    return load_hub(task, hint)
