"""Fine-tuned weights in half precision: do a store's runs keep their metrics and predictions?

Each finished fine-tuned run of ``--store`` is evaluated on its task's whole dev
set twice, side by side: with its weights as stored (float32) and with the same
weights rounded to float16 (what storing them in half precision would keep),
computing in float32 both times. Printed per run: the metric both ways, the
predictions that differ, the largest logit change, and the bytes each way.

Judged by: the metric unchanged to 0.1 point and at most 0.5% of the
predictions changed (PASS/FAIL per run). Without a store holding a finished
fine-tuned run it says so and measures nothing.

    python -m bench weights --store PATH [--task TASK]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench weights")
    parser.add_argument("--store", help="a store with finished fine-tuned runs (default: $BERTSECRETS_STORE)")
    parser.add_argument("--task", help="only this task's runs")
    args, _ = parser.parse_known_args(argv)

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification

    from bertsecrets.core import config
    from bertsecrets.core.tasks import get_task
    from bertsecrets.ingest import metrics
    from bertsecrets.ingest.data import load_task_data
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.models import load_tokenizer
    from bertsecrets.ingest.plan import settings_of
    from bertsecrets.ingest.train import predict
    from bertsecrets.store import Store, queries

    root = config.store_path(args.store)
    if not (root / "catalog.duckdb").exists() and not any(root.glob("catalog*")):
        print(f"weights: no store at {root} (--store PATH): nothing measured")
        return 0
    store = Store.open(root)
    runs = [r for r in queries.finished_finetuned_runs(store) if args.task in (None, r["task"])]
    runs = [r for r in runs if store.model_dir(r["run_id"]).is_dir()]
    if not runs:
        print(f"weights: {root} holds no finished fine-tuned run with weights: nothing measured")
        return 0
    failed = 0
    device = torch.device("cpu")
    for record in runs:
        settings = settings_of(record, root)
        task = get_task(record["task"])
        data = load_task_data(task, settings.data_dir or config.glue_dir(), settings.skip_bad_rows)
        folder = store.model_dir(record["run_id"])
        dev = encode(load_tokenizer(folder), data.dev, settings.max_length)
        model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
        full = predict(model, dev, device)
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor.half().float())
        half = predict(model, dev, device)
        labels = np.asarray(data.dev.labels)
        preds_full, preds_half = metrics.predictions(task, full), metrics.predictions(task, half)
        m_full = metrics.compute(task, preds_full, labels)
        m_half = metrics.compute(task, preds_half, labels)
        name = task.main_metric
        # A class that flips; for a regression, a score that moves by more than 0.001.
        changed = float(np.mean(np.abs(preds_full - preds_half) > (1e-3 if task.label_kind == "regression" else 0)))
        bytes_full = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        params = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
        delta = 100 * abs((m_half[name] or 0) - (m_full[name] or 0))
        ok = delta <= 0.1 and changed <= 0.005
        failed += not ok
        print(f"{task.title} seed {record['seed']} ({record['run_id']}): {name} {100 * m_full[name]:.2f} float32, "
              f"{100 * m_half[name]:.2f} float16 weights; predictions changed {100 * changed:.2f}%; largest logit "
              f"change {float(np.abs(full - half).max()):.2e}; weights {bytes_full / 1e6:.0f} MB float32, "
              f"{2 * params / 1e6:.0f} MB float16: {'PASS' if ok else 'FAIL'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
