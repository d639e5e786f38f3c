"""The paper's seven GLUE tasks and three set-ups: registries every room reads (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

from bertsecrets.core.errors import UserError


#: The two models whose maps are stored for a fine-tuned run: before and after fine-tuning.
ROLES: tuple[str, ...] = ("pretrained", "finetuned")

#: The set-ups of the paper's Table 1, in the order a run of them is made.
SETUPS: dict[str, str] = {
    "finetuned": "pretrained + fine-tuning",
    "random_init": "random init + fine-tuning",
    "no_finetuning": "pretrained, no fine-tuning",
}


@dataclass(frozen=True)
class Task:
    """Everything the ingest needs to know about one GLUE task."""

    name: str  # as typed on the command line: "mrpc"
    title: str  # as printed: "MRPC"
    glue_folder: str  # <GLUE_DIR>/<glue_folder>/{train,dev}.tsv
    dev_file: str  # the dev split's file name in that folder
    tsv_text_columns: tuple[str, ...]  # header names of the one or two text columns
    tsv_label_column: str
    hub_config: str  # nyu-mll/glue configuration
    hub_dev_split: str
    hub_text_columns: tuple[str, ...]
    label_kind: str  # "class" or "regression"
    # For classification: the label values as the TSV writes them, in class-id order
    # (the hub's ids follow the same order).
    tsv_labels: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("accuracy",)
    # The paper's Table 1 (dev, in %): set-up -> the numbers as printed there.
    paper_table1: tuple[tuple[str, str], ...] = ()

    @property
    def num_labels(self) -> int:
        return 1 if self.label_kind == "regression" else len(self.tsv_labels)

    @property
    def pair(self) -> bool:
        return len(self.tsv_text_columns) == 2

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def paper(self, setup: str) -> str:
        """The paper's Table 1 entry for a set-up (MRPC and QQP: "F1/accuracy")."""
        return dict(self.paper_table1).get(setup, "")


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            name="mrpc", title="MRPC", glue_folder="MRPC", dev_file="dev.tsv",
            tsv_text_columns=("#1 String", "#2 String"), tsv_label_column="Quality",
            hub_config="mrpc", hub_dev_split="validation", hub_text_columns=("sentence1", "sentence2"),
            label_kind="class", tsv_labels=("0", "1"), metrics=("f1", "accuracy"),
            paper_table1=(("no_finetuning", "0/31.6"), ("random_init", "81.2/68.3"), ("finetuned", "87.9/82.3")),
        ),
        Task(
            name="sts-b", title="STS-B", glue_folder="STS-B", dev_file="dev.tsv",
            tsv_text_columns=("sentence1", "sentence2"), tsv_label_column="score",
            hub_config="stsb", hub_dev_split="validation", hub_text_columns=("sentence1", "sentence2"),
            label_kind="regression", metrics=("pearson", "spearman"),
            paper_table1=(("no_finetuning", "33.1"), ("random_init", "2.9"), ("finetuned", "82.7")),
        ),
        Task(
            name="sst-2", title="SST-2", glue_folder="SST-2", dev_file="dev.tsv",
            tsv_text_columns=("sentence",), tsv_label_column="label",
            hub_config="sst2", hub_dev_split="validation", hub_text_columns=("sentence",),
            label_kind="class", tsv_labels=("0", "1"), metrics=("accuracy",),
            paper_table1=(("no_finetuning", "49.1"), ("random_init", "80.5"), ("finetuned", "92.0")),
        ),
        Task(
            name="qqp", title="QQP", glue_folder="QQP", dev_file="dev.tsv",
            tsv_text_columns=("question1", "question2"), tsv_label_column="is_duplicate",
            hub_config="qqp", hub_dev_split="validation", hub_text_columns=("question1", "question2"),
            label_kind="class", tsv_labels=("0", "1"), metrics=("f1", "accuracy"),
            paper_table1=(("no_finetuning", "0/60.9"), ("random_init", "0/63.2"), ("finetuned", "65.2/78.6")),
        ),
        Task(
            name="rte", title="RTE", glue_folder="RTE", dev_file="dev.tsv",
            tsv_text_columns=("sentence1", "sentence2"), tsv_label_column="label",
            hub_config="rte", hub_dev_split="validation", hub_text_columns=("sentence1", "sentence2"),
            label_kind="class", tsv_labels=("entailment", "not_entailment"), metrics=("accuracy",),
            paper_table1=(("no_finetuning", "52.7"), ("random_init", "52.7"), ("finetuned", "64.6")),
        ),
        Task(
            name="qnli", title="QNLI", glue_folder="QNLI", dev_file="dev.tsv",
            tsv_text_columns=("question", "sentence"), tsv_label_column="label",
            hub_config="qnli", hub_dev_split="validation", hub_text_columns=("question", "sentence"),
            label_kind="class", tsv_labels=("entailment", "not_entailment"), metrics=("accuracy",),
            paper_table1=(("no_finetuning", "52.8"), ("random_init", "49.5"), ("finetuned", "84.4")),
        ),
        Task(
            name="mnli", title="MNLI-m", glue_folder="MNLI", dev_file="dev_matched.tsv",
            tsv_text_columns=("sentence1", "sentence2"), tsv_label_column="gold_label",
            hub_config="mnli", hub_dev_split="validation_matched", hub_text_columns=("premise", "hypothesis"),
            label_kind="class", tsv_labels=("entailment", "neutral", "contradiction"), metrics=("accuracy",),
            paper_table1=(("no_finetuning", "31.7"), ("random_init", "61.0"), ("finetuned", "78.6")),
        ),
    ]
}

_ALIASES = {"stsb": "sts-b", "sst2": "sst-2", "mnli-m": "mnli", "mnli_m": "mnli"}


def get_task(name: str) -> Task:
    """The task called ``name`` (case-insensitive; "stsb" and "sst2" work too)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return TASKS[key]
    except KeyError:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}") from None
