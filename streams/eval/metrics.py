"""The metrics, computed by ranx (a maintained IR evaluation library) rather than by hand."""

from __future__ import annotations

import warnings

METRICS = ("ndcg@10", "recall@100", "mrr@10", "precision@5")
DEPTH = 100  # the deepest cut-off above: every ranking is fetched this deep


def score_run(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-query values of every metric. `run` maps a query id to {corpus id: score}, higher
    first; a query the run found nothing for scores 0 (it must still be counted)."""
    from ranx import Qrels, Run, evaluate  # imported here: numba compiles for seconds on first use

    complete = {qid: run.get(qid, {}) for qid in qrels}
    if not any(complete.values()):
        # ranx cannot build a run with no result at all (a new index generation not filled yet): every
        # metric of every query is 0 then.
        zero = {metric: 0.0 for metric in METRICS}
        return dict(zero), {qid: dict(zero) for qid in qrels}
    ranx_run = Run(complete)
    with warnings.catch_warnings():  # numba's type-safety chatter on every call, not ours to fix
        warnings.simplefilter("ignore")
        means = evaluate(Qrels(qrels), ranx_run, list(METRICS), make_comparable=True)
    per_query = {qid: {metric: float(ranx_run.scores[metric][qid]) for metric in METRICS} for qid in qrels}
    return {metric: float(means[metric]) for metric in METRICS}, per_query


def ranking_scores(ranked_ids: list[str]) -> dict[str, float]:
    """A ranked list as ranx wants it: descending scores by position (ties would reorder it)."""
    return {doc_id: float(len(ranked_ids) - position) for position, doc_id in enumerate(ranked_ids)}
