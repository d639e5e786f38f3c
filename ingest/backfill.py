"""The ingest's step that adds the norms ||f(x_j)|| to map sets stored before they were kept.

A map set written by this version has its norms already (extraction writes
them with the maps). One from an older ingest has none: this step runs the
model again over the same dev inputs (the pretrained model, or the run's
stored fine-tuned weights) and writes only the norms beside the maps, whose
bytes it never touches. Resumable like the maps; ``done`` is cheap (the map
sets' attributes), so a finished ingest still skips everything.
"""

from __future__ import annotations

from bertsecrets.core.tasks import ROLES
from bertsecrets.store import Store, StoreError

NAME = "norms"


def _missing(store: Store, plan) -> list[str]:
    """The roles whose finished map set lacks its norms."""
    from bertsecrets.store.maps import norms_complete

    out = []
    for role in ROLES:
        path = store.maps_path(plan.map_ids[role])
        part = store.catalog.read_part("maps", plan.map_part(role))
        if not path.exists() or part is None or not part.num_rows or part["status"][0].as_py() != "done":
            continue  # maps not finished: their extraction comes first (and writes norms where it can)
        try:
            if not norms_complete(path):
                out.append(role)
        except StoreError:
            continue  # a damaged map set is `bertsecrets check`'s to report
    return out


def done(store: Store, plan) -> bool:
    return "finetuned" not in plan.settings.setups or not _missing(store, plan)


def run(store: Store, plan, console, progress) -> None:
    if "finetuned" not in plan.settings.setups:
        return
    from bertsecrets.ingest import steps
    from bertsecrets.ingest.plan import code_version

    work = steps.Work(store, plan, console, code_version())
    work.progress = progress
    for role in _missing(store, plan):
        work.add_norms(role)
