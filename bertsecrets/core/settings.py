"""The settings of an ingest, declared once: the CLI's options, the run record and the content keys read them.

Each field says, in its metadata, how a person sets it (flag, help), whether
it has a column in the ``runs`` table, and which content keys it enters:

- ``run``: every run of the ingest (and the pretrained maps where it shapes them);
- ``trained``: the runs that are fine-tuned (not ``no_finetuning``);
- ``maps``: the stored attention maps;
- ``None``: no key, with the reason (``why``) the artifacts' bytes do not depend on it.

``bertsecrets.ingest.plan`` builds the keys from these declarations; a test
changes every field in turn and checks that exactly the declared keys change.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import SETUPS

PRECISIONS = ("uint8", "float16")
WEIGHTS = ("float32", "float16")
DEVICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds


def setting(default: Any = MISSING, *, help: str, key: str | None, why: str = "", flag: str | None = None,
            metavar: str | None = None, column: str | None = None, untrained: Any = None) -> Any:
    """A settings field. ``column``: the arrow type of its ``runs`` column; ``untrained``: that column's value
    in a run that is not fine-tuned (for ``trained`` fields)."""
    if key is None and not why:
        raise ValueError("a setting outside every key must say why the artifacts do not depend on it")
    meta = {"help": help, "key": key, "why": why, "flag": flag, "metavar": metavar, "column": column,
            "untrained": untrained}
    return field(default=default, metadata=meta)


def _split(value: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    return tuple(value)


@dataclass(frozen=True)
class IngestSettings:
    """Everything `bertsecrets ingest` can be told for one task and seed; checked before any work."""

    task: str = setting(help="mrpc, sts-b, sst-2, qqp, rte, qnli or mnli", key="run", flag="task")
    model: str | None = setting(
        None, key="run", metavar="MODEL",
        help="hub id, local folder, or 'minilm' (bundled all-MiniLM-L6-v2); default bert-base-uncased, falling "
             "back to minilm when it cannot be loaded (the key holds the model really loaded and its revision)")
    store: str | None = setting(None, key=None, metavar="PATH", why="where the store is, not what it holds",
                                help="the store folder (default: $BERTSECRETS_STORE, else ./bertsecrets-store)")
    data_dir: str | None = setting(
        None, key=None, metavar="DIR",
        why="the data enters the keys as the fingerprint of its texts and labels, wherever it was read from",
        help="a GLUE folder (<DIR>/MRPC/dev.tsv); default $GLUE_DIR, else the hub")
    seed: int = setting(0, key="run", column="int64", help="random seed of the classifier head, data order and dropout")
    learning_rate: float | None = setting(
        None, key="trained", flag="--lr", column="float64",
        help="learning rate (default: the model's preset: 2e-5, minilm 5e-5)")
    batch_size: int = setting(32, key="trained", column="int32", help="training batch size")
    epochs: int = setting(3, key="trained", column="int32", untrained=0, help="training epochs")
    warmup_ratio: float = setting(0.1, key="trained", flag="--warmup", column="float64",
                                  help="warm-up as a fraction of the steps")
    weight_decay: float = setting(0.01, key="trained", column="float64", help="AdamW weight decay")
    max_length: int = setting(128, key="run", column="int32", help="word pieces per input, at most 512")
    max_examples: int = setting(1000, key="maps", help="dev examples whose maps are stored (the first N)")
    max_train_examples: int | None = setting(
        None, key="run", column="int64", metavar="N",
        help="use only the first N training examples (enters the keys through the data's fingerprint)")
    precision: str = setting("uint8", key="maps", help="uint8 (error <= 1/510) or float16")
    weights: str = setting(
        "float32", key="trained", metavar="PRECISION",
        help="precision the fine-tuned weights are stored in: float32, or float16 (half the bytes; the run computes "
             "with the rounded weights throughout; `just bench weights` compares a store's runs both ways)")
    setups: tuple[str, ...] = setting(
        tuple(SETUPS), key=None, why="which runs to make, not how each is made",
        help="comma-separated set-ups of Table 1 to run")
    skip_bad_rows: bool = setting(
        False, key=None, why="a skipped row changes the data, and so its fingerprint",
        help="skip unparseable data rows (counted in the run)")
    device: str = setting(
        "auto", key="run",
        help="auto (GPU when present), cpu or cuda (the key holds the device kind and autocast type used)")
    eval_batch_size: int = setting(
        128, key=None, why="padding is masked, so an input's logits do not depend on its batch",
        help="dev inputs per forward pass when evaluating")
    extract_batch_size: int = setting(
        32, key=None, why="padding is masked, so an input's maps do not depend on its batch",
        help="dev inputs per forward pass when storing maps")
    checkpoint_seconds: float = setting(
        60.0, key=None, flag="--checkpoint-every", metavar="SECONDS",
        why="a run resumed from a checkpoint ends with the same weights as one never stopped",
        help="how often fine-tuning saves its state for resuming")

    def __post_init__(self) -> None:
        object.__setattr__(self, "setups", _split(self.setups))
        for name in ("batch_size", "epochs", "max_examples", "eval_batch_size", "extract_batch_size"):
            _positive_int(self, name)
        if self.max_train_examples is not None:
            _positive_int(self, "max_train_examples")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"{flag_of('seed')} must be a whole number from 0 to {MAX_SEED}, got {self.seed!r}")
        if not isinstance(self.max_length, int) or not 8 <= self.max_length <= 512:
            raise UserError(f"--max-length must be between 8 and 512 (BERT's positions), got {self.max_length}")
        if self.learning_rate is not None and not (_finite(self.learning_rate) and 0 < self.learning_rate < 1):
            raise UserError(f"--lr must be between 0 and 1, got {self.learning_rate}")
        if not (_finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1):
            raise UserError(f"--warmup must be a fraction of the steps in [0, 1), got {self.warmup_ratio}")
        if not (_finite(self.checkpoint_seconds) and self.checkpoint_seconds >= 0):
            raise UserError(f"--checkpoint-every must be a number of seconds, 0 or more, got {self.checkpoint_seconds}")
        if not (_finite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"--weight-decay must be a number, 0 or more, got {self.weight_decay}")
        if self.weights not in WEIGHTS:
            raise UserError(f"--weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        unknown = [s for s in self.setups if s not in SETUPS]
        if unknown or not self.setups:
            raise UserError(f"--setups takes a comma-separated subset of {', '.join(SETUPS)}, "
                            f"got {','.join(self.setups)!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise UserError(f"--device must be auto, cpu or cuda, got {self.device!r}")

    def values(self) -> dict[str, Any]:
        """Every setting by name (what the run record's ``settings_json`` holds)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_values(cls, values: dict[str, Any], **changes: Any) -> "IngestSettings":
        """Settings from a run's ``settings_json`` (names it does not know are left out), with ``changes``."""
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in values.items() if k in names}, **changes})


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(settings: IngestSettings, name: str) -> None:
    value = getattr(settings, name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{flag_of(name)} must be a positive whole number, got {value!r}")


def flag_of(name: str) -> str:
    """The command-line flag of a setting: ``--batch-size``, ``--lr``."""
    meta = next(f.metadata for f in fields(IngestSettings) if f.name == name)
    return meta["flag"] or "--" + name.replace("_", "-")


def keyed(role: str) -> list[str]:
    """The settings that enter the ``role`` key (``run``, ``trained`` or ``maps``)."""
    return [f.name for f in fields(IngestSettings) if f.metadata["key"] == role]


def columns() -> list[tuple[str, str]]:
    """(name, arrow type) of the settings the ``runs`` table has a column for, in declaration order."""
    return [(f.name, f.metadata["column"]) for f in fields(IngestSettings) if f.metadata["column"]]


def stored_weights(record: dict[str, Any]) -> str:
    """The precision a run's fine-tuned weights were stored in, from its ``runs`` record (its settings_json).

    Runs from before ``--weights`` existed were float32. Two runs that differ in it are two configurations,
    not two seeds of one: the report and the cross-seed analyses compare it.
    """
    try:
        saved = json.loads(record.get("settings_json") or "{}")
    except ValueError:
        saved = {}
    return str(saved.get("weights") or "float32")


def record_values(settings: IngestSettings, trained: bool) -> dict[str, Any]:
    """The ``runs`` columns of the settings; a run that is not fine-tuned has none of the training ones."""
    out = {}
    for f in fields(IngestSettings):
        if f.metadata["column"]:
            value = getattr(settings, f.name)
            out[f.name] = value if trained or f.metadata["key"] != "trained" else f.metadata["untrained"]
    return out


def add_arguments(parser, skip: tuple[str, ...] = ("task", "store")) -> None:
    """One argparse option per setting, with its help and default (``skip``: those the command adds itself)."""
    for f in fields(IngestSettings):
        if f.name in skip:
            continue
        meta, default = f.metadata, f.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        help_text = meta["help"] + ("" if default in (None, False) else f" (default {shown})")
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_text, "default": default}
        flag = flag_of(f.name)
        if isinstance(default, bool):
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = meta["metavar"] or flag.lstrip("-").upper().replace("-", "_")
            if f.type in ("int", "int | None"):
                kwargs["type"] = int
            elif f.type in ("float", "float | None"):
                kwargs["type"] = float
        parser.add_argument(flag, **kwargs)


def from_arguments(args: Any, **given: Any) -> IngestSettings:
    """The settings an argparse namespace holds (made by ``add_arguments``), with ``given`` on top."""
    values = {f.name: getattr(args, f.name) for f in fields(IngestSettings) if hasattr(args, f.name)}
    return IngestSettings(**{**values, **given})
