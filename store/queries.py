"""Questions every room asks of the catalog, answered once: which run, which of its results.

What belongs here: every read of the catalog that the CLI, the figures, the
analyses, the ablation or the browser make, as a small function named after
the question it answers (``class_shares(store, run_id)``, not ``query_3``),
returning rows (a list of dicts) or an Arrow table, in a stated order.
Two callers that ask the same question call the same function; a caller that
wants fewer columns picks them from the answer. Writes stay with their writers
(``Catalog.write``, ``store.labels``), and the SQL a person types
(``bertsecrets sql``, the SQL screen) is data, not a question of this app, so
it never comes here.

Layers and heads are 0-indexed here, as stored. The CLI, the figures, the
analyses and the ablation all pick "the task's fine-tuned run" the same way:
a finished fine-tuned run that holds the results asked for, the lowest seed
first, then the latest started. Every function is safe to call from worker
threads: the catalog gives each thread its own DuckDB connection.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import get_task
from bertsecrets.store.schema import TABLES
from bertsecrets.store.store import Store

#: What a fine-tuned run can be asked to hold, and the SQL condition on ``r`` (the runs row) that says so.
HAVING = {
    None: "TRUE",
    "maps": "r.run_id IN (SELECT run_id FROM maps WHERE status = 'done')",
    "analyses": "r.run_id IN (SELECT run_id FROM analyses WHERE step = 'maps' AND status = 'done')",
    "ablation": "r.run_id IN (SELECT run_id FROM ablation)",
}

#: For the message when there is none: what the run lacks, and the command that makes it.
_MISSING = {
    None: ("", "bertsecrets ingest {task}"),  # "no finished fine-tuned RTE run"
    "maps": (" with stored maps", "bertsecrets ingest {task}"),
    "analyses": (" with analyses", "bertsecrets analyze {task}"),
    "ablation": (" with ablation results", "bertsecrets ablate {task}"),
}


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is given (not None), and their parameters."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    return "WHERE " + (" AND ".join(sql for sql, _ in given) or "TRUE"), [value for _, value in given]


# -- runs ------------------------------------------------------------------------------------


def task_runs(store: Store, task: str, having: str | None = None) -> list[dict[str, Any]]:
    """The finished fine-tuned runs of ``task`` that hold ``having``: lowest seed first, then the latest started."""
    name = get_task(task).name
    return store.rows(
        f"SELECT r.* FROM runs r WHERE r.task = ? AND r.setup = 'finetuned' AND r.status = 'done' "
        f"AND {HAVING[having]} ORDER BY r.seed, r.started_at DESC", [name],
    )


def task_run(store: Store, task: str, having: str | None = None) -> dict[str, Any]:
    """The task's fine-tuned run (see ``task_runs``); a one-line error saying what to run when there is none."""
    runs = task_runs(store, task, having)
    if not runs:
        t = get_task(task)
        lacks, command = _MISSING[having]
        which = "finished fine-tuned" if having is None else "fine-tuned"
        raise UserError(f"no {which} {t.title} run{lacks} in the store at {store.root}: "
                        f"run `{command.format(task=t.name)}` first")
    return runs[0]


def finetuned_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run's record, checked to be a finished fine-tuned run with its weights in the store."""
    record = store.run(run_id)
    if record is None:
        raise UserError(f"no run {run_id} in {store.root}: `bertsecrets runs` lists the runs")
    if record["setup"] != "finetuned":
        raise UserError(f"run {run_id} is a {record['setup']} run; weights and maps are kept for fine-tuned runs only")
    if record["status"] != "done" or not store.has_model(run_id):
        raise UserError(f"run {run_id} is not finished ({record['status']}): "
                        f"run `bertsecrets ingest {record['task']}` to finish it")
    return record


def resolve_run(store: Store, target: str, having: str | None = None) -> dict[str, Any]:
    """A run id (checked) or a task name (its fine-tuned run holding ``having``), as the run's record."""
    target = target.strip()
    if target.startswith("run-"):
        return finetuned_run(store, target)
    return task_run(store, target, having)


def runs_with_maps(store: Store, target: str) -> list[str]:
    """The fine-tuned runs with stored maps that ``target`` names: a run id (its experiment's), or a task (all)."""
    target = target.strip()
    if target.startswith("run-"):
        record = store.run(target)
        if record is None:
            raise UserError(f"no run {target} in the store at {store.root}: see `bertsecrets runs`")
        # The maps of an experiment live with its fine-tuned run; the other set-ups point there.
        rows = store.rows("SELECT DISTINCT m.run_id FROM maps m JOIN runs r USING (run_id) "
                          "WHERE r.experiment_id = ? AND m.status = 'done' ORDER BY m.run_id", [record["experiment_id"]])
        if not rows:
            raise UserError(f"run {target} has no stored maps yet: finish its ingest first")
        return [r["run_id"] for r in rows]
    return [r["run_id"] for r in task_runs(store, target, "maps")] or [task_run(store, target, "maps")["run_id"]]


def experiment_runs(store: Store, experiment_id: str, finished: bool = True) -> list[dict[str, Any]]:
    """The runs of one ingest (the set-ups of Table 1), by set-up; only the finished ones unless ``finished`` is False."""
    where, params = _where(("experiment_id = ?", experiment_id), ("status = ?", "done" if finished else None))
    return store.rows(f"SELECT * FROM runs {where} ORDER BY setup", params)


#: A run with the size of its finished maps: ``map_sets`` (0, 1 or 2) and ``map_examples`` (inputs per set).
_RUN_LIST = """
SELECT r.run_id, r.experiment_id, r.task, r.setup, r.model_used AS model, r.seed, r.status, r.stage,
       r.accuracy, r.f1, r.pearson, r.spearman, r.n_layers, r.n_heads, r.dev_examples,
       r.started_at, r.finished_at, r.error, r.train_seconds, r.learning_rate, r.epochs, r.max_length,
       r.max_train_examples,
       (SELECT max(m.n_examples) FROM maps m WHERE m.run_id = r.run_id AND m.status = 'done') AS map_examples,
       (SELECT count(*) FROM maps m WHERE m.run_id = r.run_id AND m.status = 'done') AS map_sets
FROM runs r
"""
#: The order runs are listed in, everywhere: by task, then as they were started.
_RUN_ORDER = "ORDER BY task, started_at, setup"


def run_list(store: Store, run_id: str | None = None) -> list[dict[str, Any]]:
    """Every run (or the one ``run_id``) with its metrics and the size of its finished maps, by task, then as started."""
    where, params = _where(("run_id = ?", run_id))
    return store.rows(f"SELECT * FROM ({_RUN_LIST}) {where} {_RUN_ORDER}", params)


def runs_table(store: Store) -> pa.Table:
    """The run list as `bertsecrets runs` prints it: one line per run, metrics in % (accuracy, else Pearson's r)."""
    return store.query(f"""
        SELECT run_id, task, setup, model, seed, status,
               round(100 * coalesce(accuracy, pearson), 1) AS "acc|r", round(100 * f1, 1) AS f1,
               round(train_seconds) AS train_s, strftime(started_at, '%Y-%m-%d %H:%M') AS started
        FROM ({_RUN_LIST}) {_RUN_ORDER}""")


# -- a run's inputs and maps ----------------------------------------------------------------


def examples(store: Store, run_id: str, below: int | None = None) -> list[dict[str, Any]]:
    """The run's dev inputs (the first ``below`` of them), by example: texts, gold label, prediction, length."""
    where, params = _where(("run_id = ?", run_id), ("example < ?", below))
    return store.rows("SELECT example, text_a, text_b, label, prediction, correct, n_tokens FROM examples "
                      f"{where} ORDER BY example", params)


def tokens(store: Store, run_id: str, below: int | None = None) -> pa.Table:
    """The word pieces of the run's stored inputs (the first ``below``), by example and position, with their offsets."""
    where, params = _where(("run_id = ?", run_id), ("example < ?", below))
    return store.query("SELECT example, position, token, segment, char_start, char_end FROM tokens "
                       f"{where} ORDER BY example, position", params)


def one_sentence_inputs(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """The stored inputs of these runs that hold one sentence (no word piece of a second segment), by run and
    example; an input whose word pieces are not stored is not among them."""
    return store.rows("SELECT run_id, example FROM tokens WHERE run_id IN (SELECT unnest(?)) "
                      "GROUP BY run_id, example HAVING max(segment) = 0 ORDER BY run_id, example", [list(run_ids)])


def finished_maps(store: Store, run_id: str | None = None) -> list[dict[str, Any]]:
    """The finished map sets (of one run, or of all), by run, role and age: id and size (inputs, layers, heads)."""
    where, params = _where(("status = ?", "done"), ("run_id = ?", run_id))
    return store.rows(f"SELECT run_id, role, map_id, n_examples, n_layers, n_heads FROM maps {where} "
                      "ORDER BY run_id, role, created_at", params)


# -- people's labels --------------------------------------------------------------------------


def given_labels(store: Store, run_id: str | None = None, labeller: str | None = None) -> list[dict[str, Any]]:
    """People's labels of maps (of one run, by one labeller, or all), by labeller, run and map."""
    where, params = _where(("run_id = ?", run_id), ("labeller = ?", labeller))
    return store.rows(f"SELECT * FROM labels {where} ORDER BY labeller, run_id, role, example, layer, head", params)


def label_counts(store: Store, labeller: str) -> list[dict[str, Any]]:
    """Per class, the maps labelled with it by everyone (``n``) and by ``labeller`` (``mine``), by class name."""
    return store.rows("SELECT label, count(*) AS n, count(*) FILTER (WHERE labeller = ?) AS mine "
                      "FROM labels GROUP BY label ORDER BY label", [labeller])


def labels_state(store: Store, run_id: str) -> dict[str, Any]:
    """How many labels people gave the run's maps (``n``) and when the latest was given (``last``, None if none)."""
    return store.rows("SELECT count(*) AS n, max(labelled_at) AS last FROM labels WHERE run_id = ?", [run_id])[0]


def latest_labels(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Each labelled map of the run once, with the latest label anyone gave it, by map."""
    return store.rows(
        "SELECT role, example, layer, head, arg_max(label, labelled_at) AS label FROM labels WHERE run_id = ? "
        "GROUP BY role, example, layer, head ORDER BY role, example, layer, head", [run_id])


# -- the analyses ----------------------------------------------------------------------------


def run_table(store: Store, table: str, run_id: str) -> pa.Table:
    """All rows of one catalog table that belong to the run, in the order they were written."""
    if table not in TABLES or "run_id" not in TABLES[table].names:
        raise ValueError(f"{table!r} is not a catalog table with a run_id column")
    return store.query(f"SELECT * FROM {table} WHERE run_id = ?", [run_id])


def _weighted(table: str, norm: bool) -> str:
    """``table``, or with ``norm`` its twin of the same columns over the norm-weighted maps (``norm_<table>``:
    a_ij ||f(x_j)||, rows renormalised; Kobayashi et al. 2020)."""
    return f"norm_{table}" if norm else table


def class_shares(store: Store, run_id: str, norm: bool = False) -> list[dict[str, Any]]:
    """Each pattern class's share of all maps (``norm``: of the norm-weighted maps, rule labels), per labeller kind
    (``source``) and model (``role``)."""
    return store.rows(f"SELECT source, role, label, avg(share) AS share FROM {_weighted('class_shares', norm)} "
                      "WHERE run_id = ? GROUP BY source, role, label ORDER BY source, role, label", [run_id])


def class_shares_by_layer(store: Store, run_id: str, role: str, source: str) -> list[dict[str, Any]]:
    """Each pattern class's share of one model's maps per layer, as ``source`` labelled them, by layer and class."""
    return store.rows("SELECT layer, label, avg(share) AS share FROM class_shares WHERE run_id = ? AND role = ? "
                      "AND source = ? GROUP BY layer, label ORDER BY layer, label", [run_id, role, source])


def clearest_maps(store: Store, run_id: str, role: str, source: str) -> list[dict[str, Any]]:
    """Per pattern class, the map ``source`` gave that class most confidently (the first such map on ties), by class."""
    return store.rows(
        "SELECT label, example, layer, head FROM map_classes WHERE run_id = ? AND role = ? AND source = ? "
        "QUALIFY row_number() OVER (PARTITION BY label ORDER BY confidence DESC NULLS LAST, example, layer, head) = 1 "
        "ORDER BY label", [run_id, role, source])


def map_classes(store: Store, run_id: str, below: int | None = None) -> pa.Table:
    """The machine-given class of every map of the run (the first ``below`` inputs), with its confidence."""
    where, params = _where(("run_id = ?", run_id), ("example < ?", below))
    return store.query(f"SELECT source, role, example, layer, head, label, confidence FROM map_classes {where}", params)


def rule_masses(store: Store, run_id: str, role: str) -> pa.Table:
    """The rule labeller's class of each of one model's maps and the masses it read (NULL from older versions)."""
    return store.query(
        "SELECT example, layer, head, label, confidence, vertical_mass, diagonal_mass, block_share, block_spread "
        "FROM map_classes WHERE run_id = ? AND role = ? AND source = 'rules' ORDER BY example, layer, head",
        [run_id, role])


def segment_ends(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The last position of each segment of each stored input (its [SEP]), by example and segment."""
    return store.rows("SELECT example, segment, max(position) AS last FROM tokens WHERE run_id = ? "
                      "GROUP BY example, segment ORDER BY example, segment", [run_id])


def classifiers(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The pattern classifiers trained on the run's maps, with their cross-validated scores, by kind."""
    return store.rows("SELECT * FROM classifiers WHERE run_id = ? ORDER BY kind", [run_id])


def layer_summary(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Per layer, means over its heads: the change under fine-tuning (``cosine``), and where attention goes.

    ``cls``, ``sep`` and ``entropy`` are the fine-tuned model's; ``pretrained_cls``
    and ``pretrained_sep`` the pretrained model's (None where it has no rows).
    Only layers with fine-tuned statistics and a measured change, by layer.
    """
    return store.rows("""
        WITH fine AS (
            SELECT s.layer, avg(c.cosine_mean) AS cosine, avg(s.attn_cls) AS cls, avg(s.attn_sep) AS sep,
                   avg(s.entropy) AS entropy
            FROM head_stats s JOIN head_change c USING (run_id, layer, head)
            WHERE s.run_id = ? AND s.role = 'finetuned' GROUP BY s.layer),
        pre AS (
            SELECT layer, avg(attn_cls) AS cls, avg(attn_sep) AS sep FROM head_stats
            WHERE run_id = ? AND role = 'pretrained' GROUP BY layer)
        SELECT fine.*, pre.cls AS pretrained_cls, pre.sep AS pretrained_sep
        FROM fine LEFT JOIN pre USING (layer) ORDER BY layer""", [run_id, run_id])


def cls_attention(store: Store, run_id: str, role: str | None = None) -> list[dict[str, Any]]:
    """Where [CLS] attends per layer and token type (of one model, or both), in the order the analysis wrote them.

    That order keeps the analysis's own order of token types, which the figure and table columns follow.
    """
    where, params = _where(("run_id = ?", run_id), ("role = ?", role))
    return store.rows(f"SELECT * FROM cls_attention {where}", params)


def relation_heads(store: Store, run_id: str, role: str) -> list[dict[str, Any]]:
    """Every head's score for each relation (one model), by source, relation, layer and head."""
    return store.rows("SELECT * FROM relation_heads WHERE run_id = ? AND role = ? "
                      "ORDER BY source, relation, layer, head", [run_id, role])


def strongest_relation_heads(store: Store, run_id: str, role: str) -> list[dict[str, Any]]:
    """Per source and relation, the head with the highest score (the first on ties), with the mean over all heads.

    Columns: source, relation, layer, head, score, ``mean`` (of all heads' scores) and
    ``n`` (the most sentences any head was scored on); by source and relation.
    Heads without a score are left out.
    """
    return store.rows("""
        SELECT source, relation, layer, head, score, mean, n FROM (
            SELECT *, avg(score) OVER relation AS mean, max(n_sentences) OVER relation AS n,
                   row_number() OVER (PARTITION BY source, relation ORDER BY score DESC, layer, head) AS place
            FROM relation_heads WHERE run_id = ? AND role = ? AND score IS NOT NULL
            WINDOW relation AS (PARTITION BY source, relation))
        WHERE place = 1 ORDER BY source, relation""", [run_id, role])


# -- the ablation ----------------------------------------------------------------------------


def ablation_rows(store: Store, run_id: str, kind: str | None = None, metric: str | None = None) -> list[dict[str, Any]]:
    """The run's ablation results (of one kind, for one metric, or all), by kind, metric, layer and head."""
    where, params = _where(("run_id = ?", run_id), ("kind = ?", kind), ("metric = ?", metric))
    return store.rows(f"SELECT * FROM ablation {where} ORDER BY kind, metric, layer, head", params)


def head_importance_with_effect(store: Store, run_id: str, metric: str) -> list[dict[str, Any]]:
    """Each head's importance beside the effect of disabling it (Δ ``metric`` and Δ loss), most important first."""
    return store.rows(
        "SELECT i.layer, i.head, i.importance, i.rank, a.delta, a.loss_delta FROM head_importance i "
        "JOIN ablation a ON a.run_id = i.run_id AND a.layer = i.layer AND a.head = i.head "
        "WHERE i.run_id = ? AND a.kind = 'head' AND a.metric = ? ORDER BY i.rank", [run_id, metric])


def pruning_curve(store: Store, run_id: str, metric: str | None = None) -> list[dict[str, Any]]:
    """The metric (or each) with the least important heads disabled first, by metric and fraction disabled."""
    where, params = _where(("run_id = ?", run_id), ("metric = ?", metric))
    return store.rows(f"SELECT * FROM pruning {where} ORDER BY metric, fraction", params)


def ablation_seeds(store: Store, experiment_id: str) -> list[dict[str, Any]]:
    """The ablation across fine-tuning seeds started from one experiment, by kind, layer and head."""
    return store.rows("SELECT * FROM ablation_seeds WHERE experiment_id = ? ORDER BY kind, layer, head",
                      [experiment_id])


def head_importance(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's head importance, by layer and head."""
    return store.rows("SELECT * FROM head_importance WHERE run_id = ? ORDER BY layer, head", [run_id])


def run_seeds(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """The seed of each of ``run_ids``."""
    return store.rows("SELECT run_id, seed FROM runs WHERE list_contains(?, run_id) ORDER BY seed", [run_ids])


def ablation_across_runs(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation across ``run_ids`` of each configuration's value and Δ, per metric."""
    return store.rows(
        "SELECT kind, layer, head, metric, avg(value) AS mean, stddev_samp(value) AS std, "
        "avg(delta) AS delta_mean, stddev_samp(delta) AS delta_std, count(*) AS n_seeds "
        "FROM ablation WHERE list_contains(?, run_id) GROUP BY ALL ORDER BY ALL", [run_ids])


def tables_with_rows(store: Store, tables: tuple[str, ...]) -> dict[str, list[str]]:
    """Per run: which of ``tables`` (catalog tables keyed by run_id) hold rows of it, in the order given.

    What the steps after a run's maps (analyses, ablation) have written so far:
    a table without rows of the run is still being computed, or has not been.
    """
    unknown = [t for t in tables if t not in TABLES or "run_id" not in TABLES[t].names]
    if unknown:
        raise UserError(f"not catalog tables of runs: {', '.join(unknown)}")
    if not tables:
        return {}
    flags = ", ".join(f"EXISTS (SELECT 1 FROM {t} t WHERE t.run_id = r.run_id) AS {t}" for t in tables)
    return {row["run_id"]: [t for t in tables if row[t]] for row in store.rows(f"SELECT r.run_id, {flags} FROM runs r")}


# -- across tasks and seeds (the findings report, the grid's table, the Tasks screen) -----------


def finished_finetuned_runs(store: Store) -> list[dict[str, Any]]:
    """Every finished fine-tuned run, by task, seed, then the latest started first."""
    return store.rows("SELECT * FROM runs WHERE setup = 'finetuned' AND status = 'done' "
                      "ORDER BY task, seed, started_at DESC")


def feature_attention(store: Store, run_id: str, role: str, norm: bool = False) -> list[dict[str, Any]]:
    """Every head's attention (``norm``: norm-weighted attention) to each token type (Fig. 6) for one model, by layer,
    head and type."""
    return store.rows(f"SELECT layer, head, feature, value FROM {_weighted('feature_attention', norm)} "
                      "WHERE run_id = ? AND role = ? ORDER BY layer, head, feature", [run_id, role])


def layer_means(store: Store, run_id: str, role: str) -> list[dict[str, Any]]:
    """Per layer, the mean over its heads of the attention a query gives [CLS] and [SEP] (one model), by layer."""
    return store.rows("SELECT layer, avg(attn_cls) AS cls, avg(attn_sep) AS sep FROM head_stats "
                      "WHERE run_id = ? AND role = ? GROUP BY layer ORDER BY layer", [run_id, role])


def layer_change(store: Store, run_id: str, norm: bool = False) -> list[dict[str, Any]]:
    """Per layer, the mean over its heads of the cosine between the pretrained and the fine-tuned maps (``norm``:
    norm-weighted maps), by layer."""
    return store.rows(f"SELECT layer, avg(cosine_mean) AS cosine FROM {_weighted('head_change', norm)} "
                      "WHERE run_id = ? GROUP BY layer ORDER BY layer", [run_id])


# -- the browser's sentence view and labelling references --------------------------------------


def input_pieces(store: Store, run_id: str, example: int) -> list[dict[str, Any]]:
    """One input's word pieces by position: token, segment, word (NULL for [CLS]/[SEP]) and character offsets."""
    return store.rows("SELECT position, token, segment, word, char_start, char_end FROM tokens "
                      "WHERE run_id = ? AND example = ? ORDER BY position", [run_id, example])


def surest_maps(store: Store, run_id: str, source: str) -> list[dict[str, Any]]:
    """Per pattern class, the map of either model that ``source`` gave that class most confidently, by class.

    Ties (and classes given without a confidence) go to the first map in (role, example, layer, head) order.
    """
    return store.rows(
        "SELECT label, role, example, layer, head, confidence FROM map_classes WHERE run_id = ? AND source = ? "
        "QUALIFY row_number() OVER (PARTITION BY label ORDER BY confidence DESC NULLS LAST, role, example, layer, head)"
        " = 1 ORDER BY label", [run_id, source])


# -- the catalog itself -------------------------------------------------------------------------


def catalog_columns(store: Store) -> list[dict[str, Any]]:
    """Every catalog table's columns as SQL sees them: table, column, type (DuckDB's name).

    Tables in the order of ``store.schema.TABLES``, columns in their order in the table
    (a column that only newer parts of a table hold comes last).
    """
    return store.rows(
        "SELECT table_name AS \"table\", column_name AS \"column\", data_type AS type "
        "FROM information_schema.columns WHERE table_schema = 'main' AND list_contains(?, table_name) "
        "ORDER BY list_position(?, table_name), ordinal_position", [list(TABLES), list(TABLES)])


# -- norm-weighted attention (Kobayashi et al. 2020) and sinks ----------------------------------


def weight_and_norm_shares(store: Store, run_id: str, role: str = "finetuned") -> list[dict[str, Any]]:
    """Per head of one model, where attention goes by weight and by norm, by layer and head.

    Columns: layer, head; cls, sep, punct (mean weight a query gives them, head_stats); norm_cls,
    norm_sep, norm_punct (their share of the renormalised norm-weighted map, norm_head_stats);
    fnorm_mean, fnorm_cls, fnorm_sep (mean ||f(x_j)||). Empty when the run has no norm-weighted rows.
    """
    return store.rows("""
        SELECT w.layer, w.head, w.attn_cls AS cls, w.attn_sep AS sep, w.attn_punct AS punct,
               n.attn_cls AS norm_cls, n.attn_sep AS norm_sep, n.attn_punct AS norm_punct,
               n.fnorm_mean, n.fnorm_cls, n.fnorm_sep
        FROM head_stats w JOIN norm_head_stats n USING (run_id, role, layer, head)
        WHERE w.run_id = ? AND w.role = ? ORDER BY w.layer, w.head""", [run_id, role])


# -- head families, stability and attention rollout ------------------------------------------------


def finetuned_runs_with_maps(store: Store, task: str) -> list[dict[str, Any]]:
    """The fine-tuned runs of ``task`` (by name) whose fine-tuned maps are finished, by seed, then run id."""
    return store.rows("SELECT r.* FROM runs r WHERE r.setup = 'finetuned' AND r.task = ? AND r.run_id IN "
                      "(SELECT run_id FROM maps WHERE role = 'finetuned' AND status = 'done') ORDER BY r.seed, r.run_id",
                      [task])


def head_families(store: Store, run_id: str, role: str) -> list[dict[str, Any]]:
    """Every head's family, 2-D position and change under fine-tuning (one model), by layer and head."""
    return store.rows("SELECT * FROM head_families WHERE run_id = ? AND role = ? ORDER BY layer, head", [run_id, role])


def head_profiles(store: Store, run_id: str, role: str) -> list[dict[str, Any]]:
    """Every head's share of attention on each kind of key (one model), by layer, head and target."""
    return store.rows("SELECT layer, head, target, share FROM head_profiles WHERE run_id = ? AND role = ? "
                      "ORDER BY layer, head, target", [run_id, role])


def head_stability(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """Per unordered pair of ``run_ids`` that was compared, every head's distance to itself (either side's rows,
    the first run id of the pair in ``run_id``), by pair, layer and head."""
    return store.rows(
        "SELECT least(run_id, other_run_id) AS run_id, greatest(run_id, other_run_id) AS other_run_id, layer, head, "
        "any_value(distance) AS distance FROM head_stability "
        "WHERE list_contains(?, run_id) AND list_contains(?, other_run_id) GROUP BY ALL "
        "ORDER BY run_id, other_run_id, layer, head", [run_ids, run_ids])


def cls_rollout(store: Store, run_id: str, role: str | None = None) -> list[dict[str, Any]]:
    """Where [CLS] attends after rollout beside the raw maps, per layer and token type (one model or both), in the
    order the analysis wrote them."""
    where, params = _where(("run_id = ?", run_id), ("role = ?", role))
    return store.rows(f"SELECT * FROM cls_rollout {where}", params)


def head_stability_of(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Per head of ``run_id``, its mean distance to itself in the other seeds compared with it (``n_runs`` of them),
    from either side's rows; by layer and head."""
    return store.rows(
        "SELECT layer, head, avg(distance) AS distance, count(*) AS n_runs FROM ("
        "  SELECT CASE WHEN run_id = ? THEN other_run_id ELSE run_id END AS other, layer, head, "
        "         any_value(distance) AS distance FROM head_stability WHERE run_id = ? OR other_run_id = ? GROUP BY ALL)"
        " GROUP BY layer, head ORDER BY layer, head", [run_id, run_id, run_id])
