"""`streams eval tune`: choose RRF's k, the retrievers' weights and how many chunks each retriever
fetches on a set's tuning queries, then measure the default and the choice on its held-out queries
through the ordinary evaluation (streams/eval/split_queries.py says which queries are which).

The retrievers' hits do not depend on rrf_k or the weights. Each tuning query is asked once per
retrieval setting (a value of chunks_per_k) with `hybrid_index.retrieve`, the first half of
`search_page`, and every fusion setting is scored by `fuse`, its second half, over those hits: the
grid costs two Elasticsearch requests per tuning query and retrieval setting, whatever the number of
fusion settings. Nothing here changes a default: the report gives the `streams eval` command line
that measures the choice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch

from streams.elastic.hybrid_index import BM25_FIELDS, DEFAULT_TUNING, Retrieved, SearchTuning, fuse
from streams.eval.golden_set import GoldenSet
from streams.eval.load_collection import LoadedCollection
from streams.eval.metrics import DEPTH, ranking_scores, score_run
from streams.eval.run_eval import corpus_ranking, retrievals
from streams.eval.sets import mean_report
from streams.eval.split_queries import QuerySplit

OBJECTIVE = "ndcg@10"

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]
Objective = Callable[[Qrels, Run], float]
Hits = Mapping[str, Retrieved]  # query id -> what the retrievers returned for it
Fetch = Callable[[GoldenSet, SearchTuning], Hits]  # a set's queries, asked with one retrieval setting
Measure = Callable[[GoldenSet, LoadedCollection, SearchTuning], dict[str, Any]]  # an eval report of hybrid
Command = Callable[[Sequence[Path], SearchTuning], str]  # the eval command line that measures a choice


@dataclass(frozen=True)
class Grid:
    """The settings tried: every combination, and the default besides."""

    rrf_k: tuple[int, ...] = (10, 20, 40, 60, 100)
    bm25_weight: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
    # Scaling both weights scales every fused score alike, so only their ratio orders the results:
    # BM25's weight alone spans it.
    knn_weight: tuple[float, ...] = (1.0,)
    chunks_per_k: tuple[int, ...] = (2, 4)

    def settings(self, default: SearchTuning = DEFAULT_TUNING) -> list[SearchTuning]:
        """The default first, then the grid's combinations in order (ties go to the earliest)."""
        combinations = itertools.product(self.chunks_per_k, self.rrf_k, self.bm25_weight, self.knn_weight)
        tried = [
            dataclasses.replace(default, chunks_per_k=chunks, rrf_k=rrf_k, bm25_weight=bm25, knn_weight=knn)
            for chunks, rrf_k, bm25, knn in combinations
        ]
        return list(dict.fromkeys([default, *tried]))


def retrieval_of(setting: SearchTuning) -> SearchTuning:
    """What the retrievers see of a setting: its fusion knobs reset. Settings alike in this share hits."""
    return dataclasses.replace(
        setting,
        rrf_k=DEFAULT_TUNING.rrf_k,
        bm25_weight=DEFAULT_TUNING.bm25_weight,
        knn_weight=DEFAULT_TUNING.knn_weight,
    )


def ndcg_at_10(qrels: Qrels, run: Run) -> float:
    return score_run(qrels, run)[0][OBJECTIVE]


def fused_ranking(retrieved: Retrieved, setting: SearchTuning, corpus_ids: dict[str, str]) -> list[str]:
    """The corpus ids `streams eval` ranks for hybrid search under `setting` (search_page at k = DEPTH)."""
    return corpus_ranking(fuse(retrieved.bm25_hits, retrieved.knn_hits, DEPTH, tuning=setting), corpus_ids)


def score_settings(
    split: QuerySplit,
    settings: Sequence[SearchTuning],
    fetch: Fetch,
    corpus_ids: dict[str, str],
    objective: Objective = ndcg_at_10,
) -> dict[SearchTuning, float]:
    """The objective of every setting over the split's tuning queries, in the order of `settings`.
    Only `split.tuning` is read: the held-out queries are neither asked nor scored here."""
    queries = split.tuning
    scores: dict[SearchTuning, float] = {}
    for retrieval in dict.fromkeys(map(retrieval_of, settings)):
        hits = fetch(queries, retrieval)
        for setting in (s for s in settings if retrieval_of(s) == retrieval):
            run = {qid: ranking_scores(fused_ranking(hits[qid], setting, corpus_ids)) for qid in queries.queries}
            scores[setting] = objective(queries.qrels, run)
    return {setting: scores[setting] for setting in settings}


def best_setting(scores: Mapping[SearchTuning, float], default: SearchTuning = DEFAULT_TUNING) -> SearchTuning:
    """The highest score. A tie goes to the default, then to the earliest: a change must measure better."""
    return max(scores, key=lambda setting: (round(scores[setting], 6), setting == default))


def mean_scores(per_set: Sequence[Mapping[SearchTuning, float]]) -> dict[SearchTuning, float]:
    """Each setting's mean over the sets, each set counting once (as in `streams eval --sets`)."""
    return {setting: sum(scores[setting] for scores in per_set) / len(per_set) for setting in per_set[0]}


def tune_sets(
    sets: Sequence[tuple[QuerySplit, LoadedCollection]],
    settings: Sequence[SearchTuning],
    fetch: Callable[[LoadedCollection], Fetch],
    measure: Measure,
    command: Command,
    default: SearchTuning = DEFAULT_TUNING,
) -> dict[str, Any]:
    """Choose each set's best setting on its tuning queries (and with several sets the one best on
    their mean), then `measure` the default and each choice on the held-out queries, and only there."""
    scores = [score_settings(split, settings, fetch(loaded), loaded.corpus_ids()) for split, loaded in sets]
    measured: dict[tuple[int, SearchTuning], dict[str, Any]] = {}

    def held_out(position: int, setting: SearchTuning) -> dict[str, Any]:
        if (position, setting) not in measured:
            split, loaded = sets[position]
            measured[position, setting] = measure(split.held_out, loaded, setting)
        return measured[position, setting]

    def choice(positions: list[int], tuned: Mapping[SearchTuning, float]) -> dict[str, Any]:
        best = best_setting(tuned, default)

        def figures(setting: SearchTuning) -> dict[str, Any]:
            # mean_report: the figure `streams eval --sets` prints (for one set, that set's total)
            reports = mean_report([held_out(position, setting) for position in positions])
            return {
                "settings": fusion_settings(setting),
                "tuning": round(tuned[setting], 4),
                "held_out": reports["mean"]["modes"]["hybrid"]["total"][OBJECTIVE],
            }

        directories = [sets[position][0].held_out.path for position in positions]
        return {"default": figures(default), "best": figures(best), "command": command(directories, best)}

    report: dict[str, Any] = {"objective": OBJECTIVE, "settings_tried": len(settings), "sets": []}
    for position, (split, _) in enumerate(sets):
        report["sets"].append(
            {
                "set": split.held_out.name,
                "split": {
                    "seed": split.seed,
                    "tuning": {"from": split.tuning_from, "queries": sorted(split.tuning.queries)},
                    "held_out": {"from": split.held_out_from, "queries": sorted(split.held_out.queries)},
                },
                **choice([position], scores[position]),
                "grid": [{**fusion_settings(s), "tuning": round(v, 4)} for s, v in scores[position].items()],
            }
        )
    if len(sets) > 1:
        report["mean"] = {"sets": len(sets), **choice(list(range(len(sets))), mean_scores(scores))}
    return report


def fusion_settings(setting: SearchTuning) -> dict[str, Any]:
    return {
        "rrf_k": setting.rrf_k,
        "bm25_weight": setting.bm25_weight,
        "knn_weight": setting.knn_weight,
        "chunks_per_k": setting.chunks_per_k,
    }


def eval_command(
    directories: Sequence[Path], setting: SearchTuning, seed: int, group: str | None = None, index: str | None = None
) -> str:
    """The `streams eval` command line that measures `setting` on the held-out queries, as tune did."""
    shown = [_shown(directory) for directory in directories]
    words = ["streams", "eval", *(["--set", shown[0]] if len(shown) == 1 else ["--sets", ",".join(shown)])]
    words += ["--group", group] if group else []
    words += ["--index", index] if index else []
    words += ["--held-out", "--seed", str(seed), "--mode", "hybrid"]
    words += ["--rrf-k", str(setting.rrf_k), "--bm25-weight", str(setting.bm25_weight)]
    words += ["--knn-weight", str(setting.knn_weight), "--chunks-per-k", str(setting.chunks_per_k)]
    if setting.num_candidates is not None:
        words += ["--num-candidates", str(setting.num_candidates)]
    if setting.bm25_fields != BM25_FIELDS:
        words += ["--fields", ",".join(setting.bm25_fields)]
    return shlex.join(words)


def _shown(directory: Path) -> str:
    """A set's directory as a command line names it: relative to the working directory when inside it."""
    relative = os.path.relpath(directory.resolve())
    return directory.as_posix() if relative.startswith("..") else relative


def elasticsearch_fetch(
    client_factory: Callable[[], AsyncElasticsearch],
    encode: Callable[[list[str]], Sequence[Sequence[float]]],
    index: str,
    loaded: LoadedCollection,
) -> Fetch:
    """A Fetch that asks Elasticsearch as `streams eval` does, each query embedded once."""
    vectors: dict[str, Sequence[float]] = {}

    def fetch(golden: GoldenSet, retrieval: SearchTuning) -> Hits:
        new = [qid for qid in golden.queries if qid not in vectors]
        if new:
            vectors.update(zip(new, encode([golden.queries[qid] for qid in new]), strict=True))

        async def ask() -> dict[str, Retrieved]:
            async with client_factory() as client:
                return await retrievals(client, index, golden, vectors, loaded, retrieval)

        return asyncio.run(ask())

    return fetch


def tune_table(report: dict[str, Any]) -> str:
    """Each set's split, then the default and the best, on the tuning queries and on the held-out ones."""
    lines: list[str] = [f"{report['settings_tried']} settings tried, objective {OBJECTIVE} on the tuning queries"]
    for figures in report["sets"]:
        split = figures["split"]
        lines += [
            "",
            f"{figures['set']}: tuned on {len(split['tuning']['queries'])} queries ({split['tuning']['from']}), "
            f"measured on {len(split['held_out']['queries'])} held out ({split['held_out']['from']})",
            *_choice_lines(figures),
        ]
    if "mean" in report:
        lines += ["", f"one setting for all {report['mean']['sets']} sets (best mean):", *_choice_lines(report["mean"])]
    return "\n".join(lines)


def _choice_lines(choice: dict[str, Any]) -> list[str]:
    header = "| | rrf_k | bm25_weight | knn_weight | chunks_per_k | tuning | held out |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name in ("default", "best"):
        row = choice[name]
        cells = [str(value) for value in row["settings"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['tuning']:.4f} | {row['held_out']:.4f} |")
    lines.append(f"the held-out figure is the one to trust; it is measured by: {choice['command']}")
    return lines
