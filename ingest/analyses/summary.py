"""What the analyses of a run found, beside the paper's numbers: Rich tables read from the catalog (no torch)."""

from __future__ import annotations

from rich.table import Table

from bertsecrets.core.tasks import TASKS
from bertsecrets.store import Store, queries
from bertsecrets.store.labels import PATTERN_CLASSES

PAPER_HETEROGENEOUS = {"mrpc": 32, "qqp": 61}  # %, bert-base-uncased (paper 4.1: from 32% on MRPC to 61% on QQP)
PAPER_CNN_F1 = 0.86


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    """A table with (name, justify) columns."""
    t = Table(title=title)
    for name, justify in columns:
        t.add_column(name, justify=justify)
    return t


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def classes_table(store: Store, run_id: str, task: str) -> Table:
    shares = {(r["source"], r["role"], r["label"]): r["share"] for r in queries.class_shares(store, run_id)}
    paper = PAPER_HETEROGENEOUS.get(task)
    one_sentence = task in TASKS and not TASKS[task].pair
    t = Table(title=f"pattern classes, % of all maps (paper, heterogeneous: {paper if paper else '32-61'}%)")
    t.add_column("labeller")
    t.add_column("model")
    for name in PATTERN_CLASSES:
        t.add_column(name, justify="right")
    for source in ("rules", "classifier"):
        for role in ("pretrained", "finetuned"):
            if any(k[:2] == (source, role) for k in shares):
                t.add_row(source, role, *("n/a" if one_sentence and c == "block"
                                          else _pct(shares.get((source, role, c))) for c in PATTERN_CLASSES))
    if one_sentence:
        t.caption = f"block: n/a, every {TASKS[task].title} input is one sentence (a block needs two)"
    return t


def classifiers_table(store: Store, run_id: str) -> Table:
    t = _table(f"pattern classifiers, cross-validated macro F1 (paper's CNN: {PAPER_CNN_F1})",
               [("classifier", "left"), ("trained on", "left"), ("maps", "right"), ("folds", "right"),
                ("macro F1", "right")])
    for r in queries.classifiers(store, run_id):
        kind = "CNN (paper)" if r["kind"] == "cnn" else "random forest on geometry"
        t.add_row(kind, f"{r['trained_on']} labels", str(r["n_maps"]), str(r["cv_folds"]), f"{r['cv_macro_f1']:.3f}")
    return t


def layers_table(store: Store, run_id: str) -> Table:
    rows = queries.layer_summary(store, run_id)
    lowest = sorted(rows, key=lambda r: r["cosine"])[:2]
    t = _table("per layer: change under fine-tuning (paper: the last two layers change most) and where "
               "attention goes (fine-tuned; pretrained in brackets)",
               [(name, "right") for name in ("layer", "cosine pre/fine", "to [CLS] %", "to [SEP] %", "entropy (nats)")])
    for r in rows:
        mark = " *" if r in lowest else ""
        t.add_row(str(r["layer"] + 1), f"{r['cosine']:.3f}{mark}", f"{_pct(r['cls'])} ({_pct(r['pretrained_cls'])})",
                  f"{_pct(r['sep'])} ({_pct(r['pretrained_sep'])})", f"{r['entropy']:.2f}")
    t.caption = "* the two layers that change most"
    return t


def cls_table(store: Store, run_id: str) -> Table:
    rows = queries.cls_attention(store, run_id, "finetuned")
    features = list(dict.fromkeys(r["feature"] for r in rows))
    values = {(r["layer"], r["feature"]): r["value"] for r in rows}
    layers = sorted({r["layer"] for r in rows})
    t = Table(title="where the fine-tuned [CLS] attends, share % per layer (paper: [SEP] most in the last layer, "
                    "except STS-B, RTE, QNLI)")
    t.add_column("layer", justify="right")
    for f in features:
        t.add_column(f, justify="right")
    for layer in layers:
        t.add_row(str(layer + 1), *(_pct(values.get((layer, f))) for f in features))
    return t


def relations_table(store: Store, run_id: str) -> Table:
    rows = queries.strongest_relation_heads(store, run_id, "finetuned")
    t = _table("relation heads of the fine-tuned model: the strongest head per relation "
               "(paper, FrameNet: two heads at 0.20 and 0.21)",
               [("source", "left"), ("relation", "left"), ("head (layer-head)", "right"), ("score", "right"),
                ("mean of all heads", "right"), ("sentences", "right")])
    for r in rows:
        t.add_row(r["source"], r["relation"], f"{r['layer'] + 1}-{r['head'] + 1}", f"{r['score']:.3f}",
                  f"{r['mean']:.3f}", str(r["n"]))
    return t


def summary(store: Store, run_id: str) -> list[Table]:
    """The tables `bertsecrets analyze` prints for one run."""
    task = (store.run(run_id) or {}).get("task", "")
    return [classes_table(store, run_id, task), classifiers_table(store, run_id), layers_table(store, run_id),
            cls_table(store, run_id), relations_table(store, run_id)]
