"""GLUE loading: each task's TSV format on hand-made files, bad rows, and the real MRPC."""

from __future__ import annotations

import pytest

from bertsecrets.core.errors import UserError
from bertsecrets.ingest.data import BadRow, load_glue_dir, load_task_data, read_tsv
from bertsecrets.core.tasks import TASKS, get_task

# One hand-made train/dev file per task, in the column layout GLUE ships (header names are what the loader keys on).
FILES = {
    "mrpc": ("train.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
             ['1\t1\t2\tHe said "yes".\tHe agreed.', "0\t3\t4\tA cat.\tA dog."], ([1, 0], ("He said \"yes\".", "A cat."), ("He agreed.", "A dog."))),
    "sts-b": ("train.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
              ["0\tmain\tf\t2012\t1\tnone\tnone\tA man plays.\tA man is playing.\t4.750", "1\tmain\tf\t2012\t2\tnone\tnone\tA.\tB.\t0.000"],
              ([4.75, 0.0], ("A man plays.", "A."), ("A man is playing.", "B."))),
    "sst-2": ("train.tsv", "sentence\tlabel", ["it 's a charming journey . \t1", "dull \t0"],
              ([1, 0], ("it 's a charming journey . ", "dull "), None)),
    "qqp": ("train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            ["0\t1\t2\tHow do I learn?\tHow can I learn?\t1", "1\t3\t4\tWhy?\tWhen?\t0"],
            ([1, 0], ("How do I learn?", "Why?"), ("How can I learn?", "When?"))),
    "rte": ("train.tsv", "index\tsentence1\tsentence2\tlabel",
            ["0\tNo cats were here.\tCats were here.\tnot_entailment", "1\tA dog ran.\tAn animal ran.\tentailment"],
            ([1, 0], ("No cats were here.", "A dog ran."), ("Cats were here.", "An animal ran."))),
    "qnli": ("train.tsv", "index\tquestion\tsentence\tlabel",
             ["0\tWho won?\tThe home team won.\tentailment", "1\tWhen?\tIt rained.\tnot_entailment"],
             ([0, 1], ("Who won?", "When?"), ("The home team won.", "It rained."))),
    "mnli": ("train.tsv",
             "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label",
             ["0\t1\t1e\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tHe ran.\tHe moved.\tentailment\tentailment",
              "1\t2\t2c\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tShe sat.\tShe stood.\tcontradiction\tcontradiction",
              "2\t3\t3n\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tIt is.\tIt may be.\tneutral\tneutral"],
             ([0, 2, 1], ("He ran.", "She sat.", "It is."), ("He moved.", "She stood.", "It may be."))),
}


def _write_task(folder, name, bom=False):
    task = get_task(name)
    _, header, rows, _ = FILES[name]
    base = folder / task.glue_folder
    base.mkdir(parents=True, exist_ok=True)
    text = "\n".join([header, *rows]) + "\n"
    (base / "train.tsv").write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    (base / task.dev_file).write_text(text, encoding="utf-8")
    return base


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_reads_its_own_tsv_format(tmp_path, name):
    _write_task(tmp_path, name, bom=name == "mrpc")
    data = load_glue_dir(get_task(name), tmp_path)
    labels, texts_a, texts_b = FILES[name][3]
    for split in (data.train, data.dev):
        assert split.labels.tolist() == labels
        assert tuple(split.texts_a) == texts_a
        assert (split.texts_b is None) == (texts_b is None)
        if texts_b is not None:
            assert tuple(split.texts_b) == texts_b
    assert data.source.startswith("glue_dir:")


def test_registry_follows_the_paper():
    assert sorted(TASKS) == ["mnli", "mrpc", "qnli", "qqp", "rte", "sst-2", "sts-b"]
    assert get_task("MRPC").metrics == ("f1", "accuracy") and get_task("qqp").metrics == ("f1", "accuracy")
    assert get_task("stsb").metrics == ("pearson", "spearman") and get_task("sts-b").label_kind == "regression"
    assert all(get_task(t).metrics == ("accuracy",) for t in ("sst-2", "rte", "qnli", "mnli"))
    assert get_task("mnli").dev_file == "dev_matched.tsv" and get_task("mnli").hub_dev_split == "validation_matched"


def test_unknown_task_names_the_choices():
    with pytest.raises(UserError, match="unknown task 'cola'.*mrpc, sts-b"):
        get_task("cola")


def test_bad_row_stops_with_file_and_line(tmp_path):
    base = _write_task(tmp_path, "mrpc")
    (base / "dev.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\n0\t3\tonly three\n")
    with pytest.raises(BadRow, match=r"dev.tsv:3: expected 5 tab-separated fields, found 3.*--skip-bad-rows"):
        load_glue_dir(get_task("mrpc"), tmp_path)
    data = load_glue_dir(get_task("mrpc"), tmp_path, skip_bad_rows=True)
    assert len(data.dev) == 1 and data.skipped_rows == 1 and "dev.tsv:3" in data.skipped[0]


def test_bad_labels_and_scores_are_named(tmp_path):
    base = _write_task(tmp_path, "rte")
    (base / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(BadRow, match="dev.tsv:2: label 'maybe' is not one of entailment, not_entailment"):
        load_glue_dir(get_task("rte"), tmp_path)
    base = _write_task(tmp_path, "sts-b")
    header = FILES["sts-b"][1]
    (base / "dev.tsv").write_text(header + "\n0\tm\tf\t2012\t1\tn\tn\ta\tb\tfive\n")
    with pytest.raises(BadRow, match="score 'five' is not a number"):
        load_glue_dir(get_task("sts-b"), tmp_path)


def test_missing_files_and_wrong_headers(tmp_path):
    with pytest.raises(UserError, match=r"no MRPC data in .*MRPC/train.tsv"):
        load_glue_dir(get_task("mrpc"), tmp_path)
    base = _write_task(tmp_path, "mrpc")
    (base / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    with pytest.raises(UserError, match="not a MRPC file: its header lacks '#1 String'"):
        load_glue_dir(get_task("mrpc"), tmp_path)
    (base / "dev.tsv").write_text("")
    with pytest.raises(UserError, match="is empty"):
        load_glue_dir(get_task("mrpc"), tmp_path)
    (base / "dev.tsv").write_bytes(b"Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\t\xff\xfe\tb\n")
    with pytest.raises(UserError, match="not UTF-8"):
        read_tsv(base / "dev.tsv", get_task("mrpc"))


def test_no_local_data_and_no_hub_names_both(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("GLUE_DIR", str(tmp_path / "empty"))
    with pytest.raises(UserError) as err:
        load_task_data(get_task("rte"))
    message = str(err.value)
    assert "GLUE_DIR" in message and "hub" in message and "\n" not in message


def test_real_mrpc(real_glue):
    data = load_glue_dir(get_task("mrpc"), real_glue)
    assert (len(data.train), len(data.dev)) == (3668, 408)
    assert data.train.texts_a[0].startswith("Amrozi accused his brother")  # the byte-order mark is gone
    assert abs(data.dev.labels.mean() - 279 / 408) < 1e-9  # 68.4% paraphrases: the majority-class accuracy
    assert any('"' in t for t in data.train.texts_a)  # quotes inside fields survive


def test_a_split_taken_at_indices_keeps_each_inputs_texts_and_label_together():
    import numpy as np

    from bertsecrets.ingest.data import Split

    pairs = Split(["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"], np.array([0.5, 1.5, 2.5, 3.5]))
    taken = pairs.take(np.arange(1, 4, 2))  # the bench's slice: every second input from the second
    assert (taken.texts_a, taken.texts_b, taken.labels.tolist()) == (["a1", "a3"], ["b1", "b3"], [1.5, 3.5])
    single = Split(["s0", "s1", "s2"], None, np.array([7, 8, 9])).take([2, 0])
    assert (single.texts_a, single.texts_b, single.labels.tolist()) == (["s2", "s0"], None, [9, 7])
