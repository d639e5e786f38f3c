"""The paper's analyses (sections 4.1-4.5) of a run's stored maps, as a step of `bertsecrets ingest`.

One module per analysis: ``stats`` (Clark et al.'s per-head statistics),
``features`` (Fig. 6 and 7), ``change`` (Fig. 5), ``relations`` and
``sentences`` (Fig. 3), ``patterns`` and ``classifier`` (Fig. 2);
``tokens`` aligns spaCy's words to the stored word pieces, ``buckets`` holds
what several share, ``reference`` the plain per-map loops they are tested
and benchmarked against, ``driver`` runs them and keeps their cache. This module is
the ingest's post-step: ``done`` is cheap (catalog look-ups), ``run`` does
what is missing.
"""

from __future__ import annotations

NAME = "analyses"


def done(store, plan) -> bool:
    from bertsecrets.ingest.analyses.driver import pending

    # Only the fine-tuned run has maps; an ingest of the other set-ups alone has nothing to analyse.
    return "finetuned" not in plan.settings.setups or not pending(store, plan.run_ids["finetuned"])


def run(store, plan, console, progress) -> None:
    from bertsecrets.ingest.analyses.driver import analyse

    if "finetuned" in plan.settings.setups:
        analyse(store, plan.run_ids["finetuned"], console, progress)
