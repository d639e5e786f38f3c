"""What each catalog table and column holds, in the words of docs/catalog.md: the SQL screen's schema tree.

A copy, so that the installed browser (which has no docs/ folder) can show it;
tests/test_tui_sql.py checks it against docs/catalog.md and the store's schema,
so the two cannot drift apart. Markdown marks and example queries are taken out.
"""

from __future__ import annotations

#: Per table, the doc's words about it.
TABLES: dict[str, str] = {
    'runs': (
        "One row per run. An ingest of a task makes three runs, the set-ups of the paper's Table 1, sharing "
        'an experiment_id.'
    ),
    'examples': (
        "Every dev example of every run, with the run's prediction."
    ),
    'tokens': (
        'The word pieces of the examples whose maps are stored (the first --max-examples of the dev split), '
        'for the finetuned run.'
    ),
    'maps': (
        'One row per stored map set of a run: role = pretrained (the encoder before fine-tuning) or '
        'finetuned.'
    ),
    'train_log': (
        'One row per optimiser step of each fine-tuned run: run_id, epoch, step, loss, learning_rate (before '
        "the step's schedule update)."
    ),
    'labels': (
        "Pattern-class labels given by people (the TUI's labelling screen, bertsecrets labels import): "
        'run_id, role, example, layer, head (the map), label (vertical, diagonal, vertical+diagonal, block, '
        'heterogeneous), labeller, labelled_at, note. One row per labeller and map; a new label replaces that'
        " labeller's old one."
    ),
    'head_stats': (
        'Per-head summary statistics (as in Clark et al. 2019), per run and role, averaged over the analysed '
        "inputs: run_id, role, layer, head, n_examples; entropy (of each query's attention distribution, in "
        'nats); attn_cls, attn_sep, attn_punct (mean attention a query gives [CLS], the [SEP]s, punctuation);'
        ' attn_self, attn_prev, attn_next (to itself, the previous, the next token); attn_distance (mean '
        '|query - key| weighted by attention).'
    ),
    'feature_attention': (
        'Fig. 6 of the paper: attention to linguistic features. Per run_id, role, layer, head and feature '
        '(noun, verb, pronoun, subject, object, negation, cls, sep): value = for each input, the column sum '
        'of attention to each token of the type divided by L, the maximum over such tokens, averaged over the'
        ' n_examples inputs that have the type. Role is pretrained, finetuned, or difference (finetuned minus'
        ' pretrained). docs/analyses.md says how words are typed.'
    ),
    'cls_attention': (
        'Fig. 7: where the [CLS] token attends, per run_id, role, layer and feature type: value (its share of'
        ' attention to tokens of that type), n_examples.'
    ),
    'head_change': (
        'Fig. 5: per run_id, layer and head, the cosine similarity of the cropped L x L maps of the '
        'pretrained and the fine-tuned model on the same input: cosine_mean, cosine_std over the n_examples '
        'inputs.'
    ),
    'map_classes': (
        'Fig. 2: the pattern class of each map (run_id, role, example, layer, head) by source (rules: the '
        'geometric labeller; classifier: the trained classifier): label (vertical, diagonal, '
        'vertical+diagonal, block, heterogeneous) and confidence. Rows of the rules also hold the masses the '
        "rules read (NULL in the classifier's rows): vertical_mass (V, attention to [CLS] and [SEP]), "
        'diagonal_mass (D, attention to the neighbours one or two positions away), block_share (B) and '
        'block_spread (S), both NULL for a one-sentence input. docs/analyses.md defines them; for example, '
        'the maps just below the vertical threshold:'
    ),
    'class_shares': (
        'The share of each class per head: run_id, role, layer, head, source, label, share, n_maps. The '
        'task-level share is the average over heads.'
    ),
    'relation_heads': (
        'Fig. 3: per run_id, role, relation (e.g. verb-subject) from a source (spacy, jsonl, framenet), layer'
        " and head: score (the maximum attention among the relation's token pairs in a sentence, averaged "
        'over n_sentences), flagged (above the 99th percentile of all heads for that relation).'
    ),
    'analyses': (
        'Which analyses of a fine-tuned run are in the catalog, and from what: one row per run_id and step '
        '(maps, classes, framenet, norms, flow, jsonl-<hash>); key (a hash of everything that decides the '
        "step's rows: a step is redone when it changes), status (done, or skipped with the reason in message,"
        ' e.g. FrameNet not installed), seconds, created_at. See docs/analyses.md.'
    ),
    'norm_head_stats': (
        "head_stats' statistics computed on norm-weighted maps (Kobayashi et al. 2020): each weight a_ij "
        "times the norm of token j's transformed value vector, the norm ||f(x_j)||, each row renormalised to "
        'sum to 1. Per run_id, role, layer, head, over n_examples inputs: entropy, attn_cls, attn_sep, '
        'attn_punct, attn_self, attn_prev, attn_next, attn_distance as in head_stats, so attn_cls is the '
        "share of the head's output (by norm) that comes from [CLS]; and fnorm_mean (the mean norm over an "
        "input's tokens), fnorm_cls (of [CLS]) and fnorm_sep (the mean of the [SEP]s), averaged over inputs. "
        'docs/store-format.md says where the norms are stored; no rows for a run whose map sets lack norms '
        '(the analyses row of step norms says so).'
    ),
    'norm_feature_attention': (
        'feature_attention on the same renormalised norm-weighted maps: run_id, role (pretrained, finetuned, '
        'difference), layer, head, feature, value, n_examples.'
    ),
    'norm_head_change': (
        'head_change on the renormalised norm-weighted maps: run_id, layer, head, cosine_mean and cosine_std '
        'of the pretrained and the fine-tuned maps over n_examples inputs.'
    ),
    'norm_class_shares': (
        'class_shares from the rule labeller applied to the renormalised norm-weighted maps, with the same '
        'thresholds: run_id, role, layer, head, source (rules), label, share, n_maps.'
    ),
    'classifiers': (
        'The pattern classifiers trained: run_id, kind (cnn, sklearn), trained_on (person, rules), n_maps, '
        'cv_macro_f1 (cross-validated macro F1 over cv_folds folds), settings_json, created_at.'
    ),
    'ablation': (
        "Section 4.6 of the paper: the fine-tuned model with heads disabled (a disabled head's map becomes "
        '1/L over the real tokens), on the whole dev split. Per run_id and configuration (kind: baseline, '
        'head, layer, or random_head, the mean over single heads; layer and head, NULL where they do not '
        'apply) and metric: value, delta (value - baseline), ci_low and ci_high (95% paired bootstrap '
        'interval of delta over the dev examples), changed (predictions that differ from the baseline; NULL '
        "for regression and random_head), n_examples, loss (the mean dev loss, the same in each metric's row)"
        ' and loss_delta (loss - baseline loss). See docs/ablation.md.'
    ),
    'ablation_seeds': (
        'The same configurations across fine-tuning seeds: experiment_id (the experiment of the run the seeds'
        ' start from, as in runs), task, kind, layer, head, metric, mean and std (sample standard deviation) '
        "of the metric, delta_mean and delta_std of its difference to each seed's baseline, n_seeds, model "
        '(runs.model_used), seeds ("0,1,2") and run_ids (the fine-tuned runs aggregated, in seed order).'
    ),
    'head_importance': (
        'Head importance as in Michel et al. 2019: per run_id, layer and head, the importance (absolute '
        "gradient of the loss with respect to the head's gate, averaged over the dev inputs, each input with "
        'its own gate) and its rank (1 = most important).'
    ),
    'pruning': (
        'The pruning curve: per run_id and fraction of heads disabled (least important first; 0 is the '
        'baseline), n_disabled, metric and its value.'
    ),
    'head_distances': (
        'Head families (Clark et al. 2019), per run_id and role: the Jensen-Shannon distance between the maps'
        ' of head (layer, head) and head (other_layer, other_head) on the same input (base 2, the square root'
        " taken per query row, then the mean over the input's rows and over the analysed inputs; 0 for "
        'identical maps, at most 1): distance. Every ordered pair, the diagonal 0. See docs/analyses.md.'
    ),
    'head_families': (
        'The heads clustered by head_distances (average linkage; the number of clusters in 4..10 with the '
        'best silhouette) and drawn in 2-D (metric MDS of the distances), per run_id, role, layer and head: '
        'family (0-indexed, the largest first), n_families, silhouette (of that clustering; NULL for a single'
        " family), x and y (the embedding), change (the JS distance between the head's pretrained and fine-"
        "tuned maps of the same inputs, the same in both roles' rows), n_examples."
    ),
    'head_profiles': (
        "Where a head's queries look, as disjoint kinds of key, per run_id, role, layer and head: target "
        '(cls, sep, self, previous, next, same sentence, other sentence; the first that applies) and share '
        "(of a query's attention, mean over queries and inputs; a head's shares add up to 1), n_examples. "
        'Inputs of two tasks differ, so the report compares a head across tasks by these profiles.'
    ),
    'head_stability': (
        'A head against itself in another seed: per pair of fine-tuned runs of the same task and settings but'
        ' different seeds, whose maps cover the same inputs (run_id the lower run id, other_run_id the '
        'higher), layer and head: distance (the JS distance of the two fine-tuned maps of the same input, as '
        'in head_distances), n_examples. Written by whichever of the two was analysed after both had maps.'
    ),
    'cls_rollout': (
        'Attention rollout (Abnar and Zuidema 2020) beside the raw maps, per run_id, role, layer and feature '
        '(the types of cls_attention, and punct): rollout (the share of the [CLS] row of the rollout through '
        'layers 1..layer on tokens of the type, mean over the n_examples inputs that have it) and raw (the '
        "same of the layer's mean-over-heads [CLS] row: cls_attention's value)."
    ),
    'cls_rollout_tokens': (
        "The last layer's [CLS] row per input: run_id, role, example, position (as in tokens), rollout (after"
        " attention rollout through every layer) and raw (the last layer's mean over heads). Each input's "
        'rollout values add up to 1.'
    ),
}

#: Per table whose columns the doc describes one by one, each column's meaning.
COLUMNS: dict[str, dict[str, str]] = {
    'runs': {
        'run_id': 'content key of the run (run-<hash>)',
        'experiment_id': 'the same for the three set-ups of one ingest',
        'task': 'mrpc, sts-b, sst-2, qqp, rte, qnli, mnli',
        'setup': (
            'finetuned (pretrained + fine-tuning), random_init (random weights + fine-tuning), no_finetuning '
            '(pretrained encoder, untrained classifier head)'
        ),
        'model': 'the model asked for (bert-base-uncased by default)',
        'model_used': 'the model really used (minilm after a fall-back)',
        'model_source': 'hub, local, bundled',
        'model_revision': 'hub commit, or a content hash of the model folder',
        'n_layers': "the model's shape",
        'n_heads': "the model's shape",
        'seed': 'fine-tuning seed (data order, dropout, classifier head)',
        'learning_rate': 'fine-tuning settings (NULL / 0 for no_finetuning)',
        'batch_size': 'fine-tuning settings (NULL / 0 for no_finetuning)',
        'epochs': 'fine-tuning settings (NULL / 0 for no_finetuning)',
        'warmup_ratio': 'fine-tuning settings (NULL / 0 for no_finetuning)',
        'weight_decay': 'fine-tuning settings (NULL / 0 for no_finetuning)',
        'max_length': 'inputs truncated to this many word pieces',
        'max_train_examples': '--max-train-examples, or NULL for all',
        'train_examples': 'examples used',
        'dev_examples': 'examples used',
        'skipped_rows': 'unparseable rows skipped with --skip-bad-rows',
        'data_source': 'glue_dir:<folder> or hub:nyu-mll/glue/<config>',
        'data_fingerprint': 'hash of the texts and labels',
        'settings_json': 'every setting, as JSON',
        'status': (
            'running, done, failed, interrupted, or damaged (bertsecrets check --repair found part of it '
            'broken and will redo it)'
        ),
        'stage': 'the step running (training, evaluating, maps:pretrained, ...) or done',
        'accuracy': "dev metrics (the task's own; others NULL)",
        'f1': "dev metrics (the task's own; others NULL)",
        'pearson': "dev metrics (the task's own; others NULL)",
        'spearman': "dev metrics (the task's own; others NULL)",
        'metrics_json': "the task's metrics as JSON",
        'device': 'cpu or cuda',
        'dtype': (
            'the autocast type the run computed in: float32 (none), bfloat16 or float16; with the device, '
            "part of the run's content key"
        ),
        'train_seconds': 'time spent fine-tuning (across resumes) and evaluating',
        'eval_seconds': 'time spent fine-tuning (across resumes) and evaluating',
        'started_at': 'UTC timestamps',
        'finished_at': 'UTC timestamps',
        'code_version': 'bertsecrets version and git commit',
        'error': 'the error of a failed run',
    },
    'examples': {
        'run_id': "the run; the example's position in the dev split",
        'example': "the run; the example's position in the dev split",
        'text_a': 'the sentence(s); text_b is NULL for SST-2',
        'text_b': 'the sentence(s); text_b is NULL for SST-2',
        'label': (
            'gold class id (MRPC, QQP: 1 = paraphrase/duplicate; RTE, QNLI: 0 = entailment; MNLI: 0 '
            'entailment, 1 neutral, 2 contradiction), or the STS-B score'
        ),
        'n_tokens': 'real tokens L, [CLS] and [SEP]s included (after truncation)',
        'prediction': 'predicted class id or score',
        'correct': 'prediction = label (NULL for STS-B)',
    },
    'tokens': {
        'run_id': "position = row and column index in the example's maps",
        'example': "position = row and column index in the example's maps",
        'position': "position = row and column index in the example's maps",
        'token': 'the word piece ([CLS], ##ing, [SEP])',
        'token_id': 'its vocabulary id',
        'segment': '0 for text_a, 1 for text_b',
        'word': "index of the word it belongs to within its segment (the tokenizer's words); NULL for [CLS]/[SEP]",
        'char_start': 'character offsets of the piece in text_a or text_b (by segment); NULL for [CLS]/[SEP]',
        'char_end': 'character offsets of the piece in text_a or text_b (by segment); NULL for [CLS]/[SEP]',
    },
    'maps': {
        'map_id': 'the Zarr group maps/<map_id>.zarr (see docs/store-format.md)',
        'run_id': 'the finetuned run and which model',
        'role': 'the finetuned run and which model',
        'n_examples': 'its shape',
        'n_layers': 'its shape',
        'n_heads': 'its shape',
        'precision': 'uint8 (error at most 1/510) or float16',
        'n_values': 'real attention values stored (sum of L x L over maps)',
        'bytes': 'bytes on disk',
        'status': 'running or done',
        'extract_seconds': 'time to extract and store the maps',
        'created_at': 'UTC timestamp',
    },
}
