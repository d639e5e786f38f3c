"""The catalog's tables: one Arrow schema per table, documented in docs/catalog.md.

Every table is a folder of Parquet parts; a part is written once, atomically,
and replaced as a whole. DuckDB views (``SELECT * FROM runs``) union the parts.
Columns are added at the end only; ``union_by_name`` fills older parts with NULL.
"""

from __future__ import annotations

import pyarrow as pa

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
        ("seed", pa.int64()),
        ("learning_rate", pa.float64()),
        ("batch_size", pa.int32()),
        ("epochs", pa.int32()),
        ("warmup_ratio", pa.float64()),
        ("weight_decay", pa.float64()),
        ("max_length", pa.int32()),
        ("max_train_examples", pa.int64()),
        ("train_examples", pa.int64()),
        ("dev_examples", pa.int64()),
        ("skipped_rows", pa.int64()),
        ("data_source", pa.string()),
        ("data_fingerprint", pa.string()),
        ("settings_json", pa.string()),
        ("status", pa.string()),  # running | done | failed
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

#: table name -> schema. Later analyses register their tables here too.
TABLES: dict[str, pa.Schema] = {
    "runs": RUNS,
    "examples": EXAMPLES,
    "tokens": TOKENS,
    "maps": MAPS,
    "train_log": TRAIN_LOG,
}
