"""The catalog's tables: one Arrow schema per table, documented in docs/catalog.md.

Every table is a folder of Parquet parts; a part is written once, atomically,
and replaced as a whole. DuckDB views (``SELECT * FROM runs``) union the parts.
Columns are added at the end only; ``union_by_name`` fills older parts with NULL.
"""

from __future__ import annotations

import pyarrow as pa

from bertsecrets.core.settings import columns as settings_columns

#: Bumped when a table changes in a way older parts cannot be read as.
SCHEMA_VERSION = 1

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("experiment_id", pa.string()),  # the same for the set-ups of one ingest (Table 1)
        ("task", pa.string()),
        ("setup", pa.string()),  # finetuned | random_init | no_finetuning
        ("model", pa.string()),  # as asked for
        ("model_used", pa.string()),  # what was really loaded
        ("model_source", pa.string()),  # hub | local | bundled | config
        ("model_revision", pa.string()),
        ("n_layers", pa.int32()),
        ("n_heads", pa.int32()),
        # The ingest settings with a column (bertsecrets.core.settings): seed, learning_rate, batch_size, ...
        *((name, getattr(pa, kind)()) for name, kind in settings_columns()),
        ("train_examples", pa.int64()),
        ("dev_examples", pa.int64()),
        ("skipped_rows", pa.int64()),
        ("data_source", pa.string()),
        ("data_fingerprint", pa.string()),
        ("settings_json", pa.string()),
        ("status", pa.string()),  # running | done | failed | interrupted | damaged
        ("stage", pa.string()),  # the step running now, or the last one done
        ("accuracy", pa.float64()),
        ("f1", pa.float64()),
        ("pearson", pa.float64()),
        ("spearman", pa.float64()),
        ("metrics_json", pa.string()),
        ("device", pa.string()),
        ("train_seconds", pa.float64()),
        ("eval_seconds", pa.float64()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("code_version", pa.string()),
        ("error", pa.string()),
        ("dtype", pa.string()),  # the autocast type computed in: float32 (none), bfloat16, float16
    ]
)

EXAMPLES = pa.schema(
    [
        ("run_id", pa.string()),
        ("example", pa.int64()),  # position in the dev split
        ("text_a", pa.string()),
        ("text_b", pa.string()),
        ("label", pa.float64()),  # class id, or the score for regression
        ("n_tokens", pa.int32()),  # real tokens, [CLS] and [SEP]s included
        ("prediction", pa.float64()),
        ("correct", pa.bool_()),
    ]
)

TOKENS = pa.schema(
    [
        ("run_id", pa.string()),
        ("example", pa.int64()),
        ("position", pa.int32()),
        ("token", pa.string()),  # the word piece, e.g. "##ing", "[SEP]"
        ("token_id", pa.int32()),
        ("segment", pa.int8()),  # 0 first sentence, 1 second
        ("word", pa.int32()),  # index of the word it belongs to in its segment; NULL for [CLS]/[SEP]
        ("char_start", pa.int32()),  # offsets into text_a or text_b (by segment)
        ("char_end", pa.int32()),
    ]
)

MAPS = pa.schema(
    [
        ("map_id", pa.string()),
        ("run_id", pa.string()),
        ("role", pa.string()),  # pretrained | finetuned
        ("n_examples", pa.int64()),
        ("n_layers", pa.int32()),
        ("n_heads", pa.int32()),
        ("precision", pa.string()),  # uint8 | float16
        ("n_values", pa.int64()),  # real attention values stored (sum of L*L per map)
        ("bytes", pa.int64()),
        ("status", pa.string()),  # running | done
        ("extract_seconds", pa.float64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

TRAIN_LOG = pa.schema(
    [
        ("run_id", pa.string()),
        ("epoch", pa.int32()),
        ("step", pa.int64()),
        ("loss", pa.float64()),
        ("learning_rate", pa.float64()),
    ]
)

LABELS = pa.schema(
    [
        ("run_id", pa.string()),
        ("role", pa.string()),  # pretrained | finetuned
        ("example", pa.int64()),
        ("layer", pa.int32()),  # 0-indexed as stored; shown 1-indexed
        ("head", pa.int32()),
        ("label", pa.string()),  # one of store.labels.PATTERN_CLASSES
        ("labeller", pa.string()),
        ("labelled_at", pa.timestamp("us", tz="UTC")),
        ("note", pa.string()),
    ]
)

# -- the analyses (paper sections 4.1-4.5); layers and heads 0-indexed -------------

HEAD_STATS = pa.schema(
    [
        ("run_id", pa.string()),
        ("role", pa.string()),  # pretrained | finetuned
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("n_examples", pa.int64()),
        ("entropy", pa.float64()),  # mean over queries and inputs, in nats
        ("attn_cls", pa.float64()),  # mean attention a query gives [CLS]
        ("attn_sep", pa.float64()),  # ... the [SEP] tokens
        ("attn_punct", pa.float64()),  # ... punctuation
        ("attn_self", pa.float64()),  # ... itself
        ("attn_prev", pa.float64()),  # ... the previous token
        ("attn_next", pa.float64()),  # ... the next token
        ("attn_distance", pa.float64()),  # mean |query - key| weighted by attention
    ]
)

FEATURE_ATTENTION = pa.schema(  # Fig. 6: column sum / L, max over tokens of the type, mean over inputs
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("feature", pa.string()),  # noun | verb | pronoun | subject | object | negation | cls | sep
        ("value", pa.float64()),  # role 'difference': finetuned - pretrained
        ("n_examples", pa.int64()),  # inputs that have the type
    ]
)

CLS_ATTENTION = pa.schema(  # Fig. 7: where [CLS] attends, per layer, over the feature types
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("layer", pa.int32()),
        ("feature", pa.string()),
        ("value", pa.float64()),
        ("n_examples", pa.int64()),
    ]
)

HEAD_CHANGE = pa.schema(  # Fig. 5: cosine of the cropped maps, pretrained vs fine-tuned
    [
        ("run_id", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("cosine_mean", pa.float64()),
        ("cosine_std", pa.float64()),
        ("n_examples", pa.int64()),
    ]
)

MAP_CLASSES = pa.schema(  # Fig. 2: one row per map and labeller kind
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("example", pa.int64()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("source", pa.string()),  # rules | classifier
        ("label", pa.string()),  # one of store.labels.PATTERN_CLASSES
        ("confidence", pa.float64()),
        # The masses the rules read (bertsecrets.core.patterns); rules rows only, NULL for the classifier's.
        ("vertical_mass", pa.float64()),  # V: attention to [CLS] and [SEP]
        ("diagonal_mass", pa.float64()),  # D: attention to the +-1..2 neighbours
        ("block_share", pa.float64()),  # B: share of the rest kept in the own sentence; NULL: one sentence
        ("block_spread", pa.float64()),  # S: its reach against an even spread; NULL: one sentence
    ]
)

CLASS_SHARES = pa.schema(  # the share of each class per head (the task-level share is an AVG over heads)
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("source", pa.string()),  # rules | classifier
        ("label", pa.string()),
        ("share", pa.float64()),
        ("n_maps", pa.int64()),
    ]
)

RELATION_HEADS = pa.schema(  # Fig. 3: max attention over a relation's pairs, mean over sentences
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("source", pa.string()),  # spacy | jsonl | framenet
        ("relation", pa.string()),  # e.g. verb-subject (direction: from the first to the second)
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("score", pa.float64()),
        ("n_sentences", pa.int64()),
        ("flagged", pa.bool_()),  # above the 99th percentile of all heads for this relation
    ]
)

CLASSIFIERS = pa.schema(  # the pattern classifiers trained, with their cross-validated scores
    [
        ("run_id", pa.string()),
        ("kind", pa.string()),  # cnn | sklearn
        ("trained_on", pa.string()),  # person | rules
        ("n_maps", pa.int64()),
        ("cv_macro_f1", pa.float64()),
        ("cv_folds", pa.int32()),
        ("settings_json", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

ANALYSES = pa.schema(  # which analyses of a run are in the catalog, and from what (the cache of `bertsecrets analyze`)
    [
        ("run_id", pa.string()),
        ("step", pa.string()),  # maps | classes | framenet | jsonl-<hash>
        ("key", pa.string()),  # a hash of everything that decides the step's rows
        ("status", pa.string()),  # done | skipped (with the reason in message)
        ("message", pa.string()),
        ("seconds", pa.float64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

# -- the same analyses on norm-weighted maps (Kobayashi et al. 2020) -----------------
# a_ij ||f(x_j)||, rows renormalised to sum to 1 (docs/store-format.md); same columns as their weight-based tables.

NORM_HEAD_STATS = pa.schema(
    [
        *HEAD_STATS,  # each statistic on the renormalised norm-weighted maps
        ("fnorm_mean", pa.float64()),  # mean ||f(x_j)|| over an input's key tokens, mean over inputs
        ("fnorm_cls", pa.float64()),  # ||f(x_j)|| of [CLS]
        ("fnorm_sep", pa.float64()),  # mean ||f(x_j)|| of the [SEP]s
    ]
)
NORM_FEATURE_ATTENTION = FEATURE_ATTENTION
NORM_HEAD_CHANGE = HEAD_CHANGE
NORM_CLASS_SHARES = CLASS_SHARES

# -- head families, stability and attention rollout (ingest.analyses.families) --------

HEAD_DISTANCES = pa.schema(  # Jensen-Shannon distance between two heads' maps of the same input, mean over inputs
    [
        ("run_id", pa.string()),
        ("role", pa.string()),  # pretrained | finetuned
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("other_layer", pa.int32()),
        ("other_head", pa.int32()),
        ("distance", pa.float64()),  # base 2, square root per query row, mean over rows then inputs; 0..1
    ]
)

HEAD_FAMILIES = pa.schema(  # clusters of heads by their distances, and a 2-D embedding of them
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("family", pa.int32()),  # 0-indexed, the largest family first
        ("n_families", pa.int32()),  # chosen by the best silhouette in 4..10
        ("silhouette", pa.float64()),  # of that clustering (NULL: one family)
        ("x", pa.float64()),  # metric MDS of the distances (2-D)
        ("y", pa.float64()),
        ("change", pa.float64()),  # JS distance of the head's pretrained and fine-tuned maps, same inputs
        ("n_examples", pa.int64()),
    ]
)

HEAD_PROFILES = pa.schema(  # share of a query's attention on disjoint kinds of key, mean over queries and inputs
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("target", pa.string()),  # cls | sep | self | previous | next | same sentence | other sentence
        ("share", pa.float64()),
        ("n_examples", pa.int64()),
    ]
)

HEAD_STABILITY = pa.schema(  # a head against itself in another seed's fine-tuned model, same inputs
    [
        ("run_id", pa.string()),
        ("other_run_id", pa.string()),  # same task and settings, another seed
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("distance", pa.float64()),  # JS distance as in head_distances
        ("n_examples", pa.int64()),
    ]
)

CLS_ROLLOUT = pa.schema(  # where [CLS] attends after rollout through layers 1..layer, beside the raw layer's maps
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("layer", pa.int32()),
        ("feature", pa.string()),  # the types of cls_attention, and punct
        ("rollout", pa.float64()),  # share of the rollout's [CLS] row on the type, mean over inputs that have it
        ("raw", pa.float64()),  # the same of the layer's mean-over-heads [CLS] row (cls_attention's value)
        ("n_examples", pa.int64()),
    ]
)

CLS_ROLLOUT_TOKENS = pa.schema(  # the last layer's [CLS] row per input: rollout and raw (mean over heads)
    [
        ("run_id", pa.string()),
        ("role", pa.string()),
        ("example", pa.int64()),
        ("position", pa.int32()),
        ("rollout", pa.float64()),
        ("raw", pa.float64()),
    ]
)

# -- disabling heads and layers (paper section 4.6) -----------------------------------

ABLATION = pa.schema(
    [
        ("run_id", pa.string()),
        ("kind", pa.string()),  # baseline | head | layer | random_head (the mean over single heads)
        ("layer", pa.int32()),  # NULL for the baseline
        ("head", pa.int32()),  # NULL for the baseline and whole layers
        ("metric", pa.string()),  # the task's metric (one row per metric)
        ("value", pa.float64()),
        ("delta", pa.float64()),  # value - baseline
        ("ci_low", pa.float64()),  # 95% paired bootstrap interval of delta over dev examples
        ("ci_high", pa.float64()),
        ("changed", pa.int64()),  # predictions that differ from the baseline's (NULL for regression)
        ("n_examples", pa.int64()),
        ("loss", pa.float64()),  # mean dev loss (cross-entropy, or squared error), the same in each metric's row
        ("loss_delta", pa.float64()),  # loss - baseline loss: a continuous measure of the effect
    ]
)

ABLATION_SEEDS = pa.schema(  # the same configurations across fine-tuning seeds
    [
        ("experiment_id", pa.string()),  # seeds-<hash> of the runs aggregated (the table's part)
        ("task", pa.string()),
        ("kind", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("metric", pa.string()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("delta_mean", pa.float64()),
        ("delta_std", pa.float64()),
        ("n_seeds", pa.int32()),
        ("model", pa.string()),  # runs.model_used
        ("seeds", pa.string()),  # e.g. "0,1,2"
        ("run_ids", pa.string()),  # the fine-tuned runs aggregated, comma-separated, in seed order
    ]
)

HEAD_IMPORTANCE = pa.schema(  # Michel et al. 2019: |d loss / d gate| averaged over the dev set's inputs
    [
        ("run_id", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("importance", pa.float64()),
        ("rank", pa.int32()),  # 1 = most important
    ]
)

PRUNING = pa.schema(  # disable the least important heads first
    [
        ("run_id", pa.string()),
        ("fraction", pa.float64()),
        ("n_disabled", pa.int32()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)

#: table name -> schema. Later analyses register their tables here too.
TABLES: dict[str, pa.Schema] = {
    "runs": RUNS,
    "examples": EXAMPLES,
    "tokens": TOKENS,
    "maps": MAPS,
    "train_log": TRAIN_LOG,
    "labels": LABELS,
    "head_stats": HEAD_STATS,
    "feature_attention": FEATURE_ATTENTION,
    "cls_attention": CLS_ATTENTION,
    "head_change": HEAD_CHANGE,
    "map_classes": MAP_CLASSES,
    "class_shares": CLASS_SHARES,
    "relation_heads": RELATION_HEADS,
    "classifiers": CLASSIFIERS,
    "analyses": ANALYSES,
    "ablation": ABLATION,
    "ablation_seeds": ABLATION_SEEDS,
    "head_importance": HEAD_IMPORTANCE,
    "pruning": PRUNING,
    "norm_head_stats": NORM_HEAD_STATS,
    "norm_feature_attention": NORM_FEATURE_ATTENTION,
    "norm_head_change": NORM_HEAD_CHANGE,
    "norm_class_shares": NORM_CLASS_SHARES,
    "head_distances": HEAD_DISTANCES,
    "head_families": HEAD_FAMILIES,
    "head_profiles": HEAD_PROFILES,
    "head_stability": HEAD_STABILITY,
    "cls_rollout": CLS_ROLLOUT,
    "cls_rollout_tokens": CLS_ROLLOUT_TOKENS,
}
