"""`streams eval tune`: the split of the queries, the grid search over hand-computable fused rankings,
the held-out queries kept out of the choice, and the tuning path asking what `streams eval` asks."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.elastic.hybrid_index import DEFAULT_TUNING, Retrieved, SearchTuning
from streams.eval.golden_set import GoldenSet, GoldenSetError
from streams.eval.load_collection import LoadedCollection
from streams.eval.run_eval import rankings, retrievals
from streams.eval.split_queries import in_tuning_half, split_queries
from streams.eval.tune_fusion import (
    Grid,
    best_setting,
    eval_command,
    fused_ranking,
    retrieval_of,
    score_settings,
    tune_sets,
    tune_table,
)


def beir(directory: Path, splits: dict[str, list[str]]) -> Path:
    """A BEIR set whose every query `q` of a split judges the document `d-q` relevant."""
    (directory / "qrels").mkdir(parents=True)
    queries = sorted({q for qids in splits.values() for q in qids})
    (directory / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d-{q}", "text": q}) + "\n" for q in queries))
    (directory / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": q}) + "\n" for q in queries))
    for split, qids in splits.items():
        rows = "".join(f"{q}\td-{q}\t1\n" for q in qids)
        (directory / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return directory


QUERIES = [f"q{n:02}" for n in range(40)]


def hit(chunk: str, document: str) -> dict[str, Any]:
    return {"_id": chunk, "fields": {"document_id": [document]}}


# The split


def test_the_hash_split_is_deterministic_disjoint_and_covers_every_query(tmp_path: Path) -> None:
    directory = beir(tmp_path / "golden", {"test": QUERIES})
    split = split_queries(directory, seed=0)
    tuning, held_out = set(split.tuning.queries), set(split.held_out.queries)
    assert tuning and held_out and tuning.isdisjoint(held_out)
    assert tuning | held_out == set(QUERIES)
    assert set(split.tuning.qrels) == tuning and set(split.held_out.qrels) == held_out
    again = split_queries(directory, seed=0)
    assert (again.tuning, again.held_out) == (split.tuning, split.held_out)
    assert tuning == {q for q in QUERIES if in_tuning_half(q, 0)}  # a query's half is its own: id and seed
    assert set(split_queries(directory, seed=1).tuning.queries) != tuning  # the seed matters
    assert "seed 0" in split.tuning_from


def test_dev_then_train_qrels_are_preferred_to_a_hash_split(tmp_path: Path) -> None:
    both = split_queries(beir(tmp_path / "a", {"test": ["t1", "t2"], "train": ["r1", "r2"], "dev": ["v1"]}))
    assert (both.tuning_from, set(both.tuning.queries)) == ("qrels/dev.tsv", {"v1"})
    assert set(both.held_out.queries) == {"t1", "t2"}
    train = split_queries(beir(tmp_path / "b", {"test": ["t1", "t2"], "train": ["r1", "t2"]}))
    # t2 is judged in both: it stays held out, never tuned on
    assert (train.tuning_from, set(train.tuning.queries)) == ("qrels/train.tsv", {"r1"})
    assert set(train.held_out.queries) == {"t1", "t2"}


def test_a_split_that_leaves_a_half_empty_is_refused(tmp_path: Path) -> None:
    seed = next(s for s in range(100) if in_tuning_half("only", s))
    with pytest.raises(GoldenSetError, match="no held-out query"):
        split_queries(beir(tmp_path / "one", {"test": ["only"]}), seed=seed)


# The grid search, on fake hits whose fused rankings are computed by hand


# One query whose relevant document A is BM25's first and kNN's absent, while X is kNN's first and
# BM25's fifth. With BM25 weight w and RRF constant k, A scores w/(k+1) and X 1/(k+1) + w/(k+5):
# A leads only when 4w > k + 5, of this grid only at k=1, w=2 (A: 1.0, X: 0.83). Elsewhere X leads and
# A is second (P, BM25's second, scores w/(k+2) < A's).
BM25_HITS = [hit("a", "A"), hit("p", "P"), hit("q", "Q"), hit("r", "R"), hit("x", "X")]
KNN_HITS = [hit("x", "X")]
CORPUS_IDS = {doc: f"d-{doc}" for doc in "APQRX"}
TINY_GRID = Grid(rrf_k=(1, 60), bm25_weight=(1.0, 2.0), knn_weight=(1.0,), chunks_per_k=(2, 4))


def tiny_split(tmp_path: Path) -> Any:
    directory = tmp_path / "tiny"
    (directory / "qrels").mkdir(parents=True)
    (directory / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d-{d}"}) + "\n" for d in "APQRX"))
    ids = [f"q{n}" for n in range(12)]
    (directory / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": q}) + "\n" for q in ids))
    (directory / "qrels" / "test.tsv").write_text("".join(f"{q}\td-A\t1\n" for q in ids))
    return split_queries(directory, seed=0)


class RecordingFetch:
    """Answers every query with the fake hits; records which queries it was asked, and how often."""

    def __init__(self) -> None:
        self.asked: list[tuple[frozenset[str], SearchTuning]] = []

    def __call__(self, golden: GoldenSet, retrieval: SearchTuning) -> dict[str, Retrieved]:
        self.asked.append((frozenset(golden.queries), retrieval))
        return {qid: Retrieved(BM25_HITS, KNN_HITS) for qid in golden.queries}


def test_fusing_the_fake_hits_gives_the_hand_computed_order() -> None:
    fused = fused_ranking(Retrieved(BM25_HITS, KNN_HITS), SearchTuning(rrf_k=1, bm25_weight=2.0), CORPUS_IDS)
    assert fused == ["d-A", "d-X", "d-P", "d-Q", "d-R"]
    assert fused_ranking(Retrieved(BM25_HITS, KNN_HITS), DEFAULT_TUNING, CORPUS_IDS)[:2] == ["d-X", "d-A"]


def test_the_grid_search_finds_the_known_best_asking_once_per_retrieval_setting(tmp_path: Path) -> None:
    split = tiny_split(tmp_path)
    fetch = RecordingFetch()
    settings = TINY_GRID.settings(DEFAULT_TUNING)
    scores = score_settings(split, settings, fetch, CORPUS_IDS)
    assert len(scores) == 8 and settings[0] == DEFAULT_TUNING
    best = best_setting(scores, DEFAULT_TUNING)
    assert (best.rrf_k, best.bm25_weight, best.knn_weight, best.chunks_per_k) == (1, 2.0, 1.0, 2)
    assert scores[best] == pytest.approx(1.0)
    assert scores[DEFAULT_TUNING] == pytest.approx(1 / math.log2(3))  # A second: 1 / log2(2 + 1)
    # two values of chunks_per_k: two fetches, whatever the number of fusion settings
    assert [retrieval.chunks_per_k for _, retrieval in fetch.asked] == [2, 4]
    assert {retrieval_of(s) for s in settings} == {retrieval for _, retrieval in fetch.asked}


def test_a_tie_keeps_the_default() -> None:
    other = SearchTuning(rrf_k=20)
    assert best_setting({other: 0.5, DEFAULT_TUNING: 0.5}) == DEFAULT_TUNING
    assert best_setting({other: 0.6, DEFAULT_TUNING: 0.5}) == other


# The held-out queries never choose


def test_the_objective_and_the_retrievers_see_only_tuning_queries(tmp_path: Path) -> None:
    split = split_queries(beir(tmp_path / "golden", {"test": QUERIES}), seed=0)
    held_out = set(split.held_out.queries)
    scored: set[str] = set()

    def objective(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
        scored.update(qrels, run)
        return 0.0

    fetch = RecordingFetch()
    score_settings(split, TINY_GRID.settings(), fetch, CORPUS_IDS, objective)
    asked = set().union(*(queries for queries, _ in fetch.asked))
    assert held_out and scored == asked == set(split.tuning.queries)
    assert not (scored | asked) & held_out


def test_tune_sets_chooses_on_tuning_queries_and_measures_only_held_out_ones(tmp_path: Path) -> None:
    splits = [tiny_split(tmp_path), split_queries(beir(tmp_path / "golden", {"test": QUERIES}), seed=0)]
    loaded = LoadedCollection("g", "tickets", {f"d-{d}": d for d in "APQRX"})
    fetches: list[RecordingFetch] = []
    measured: list[tuple[frozenset[str], SearchTuning]] = []

    def fetch(_: LoadedCollection) -> RecordingFetch:
        fetches.append(RecordingFetch())
        return fetches[-1]

    def measure(golden: GoldenSet, _: LoadedCollection, setting: SearchTuning) -> dict[str, Any]:
        measured.append((frozenset(golden.queries), setting))
        value = 0.9 if setting.rrf_k == 1 else 0.5
        return {"modes": {"hybrid": {"total": {m: value for m in ("ndcg@10", "recall@100", "mrr@10", "precision@5")}}}}

    report = tune_sets(
        [(split, loaded) for split in splits],
        TINY_GRID.settings(),
        fetch,
        measure,
        lambda dirs, s: f"eval {len(dirs)} rrf_k={s.rrf_k}",
    )
    for split, recorded in zip(splits, fetches, strict=True):
        assert {queries for queries, _ in recorded.asked} == {frozenset(split.tuning.queries)}
    held_outs = {frozenset(split.held_out.queries) for split in splits}
    assert {queries for queries, _ in measured} == held_outs
    assert len(measured) == len(set(measured))  # each (set, setting) measured once
    first = report["sets"][0]
    assert first["best"]["settings"] == {"rrf_k": 1, "bm25_weight": 2.0, "knn_weight": 1.0, "chunks_per_k": 2}
    assert (first["best"]["tuning"], first["best"]["held_out"], first["default"]["held_out"]) == (1.0, 0.9, 0.5)
    assert first["command"] == "eval 1 rrf_k=1"
    assert first["split"]["held_out"]["queries"] == sorted(splits[0].held_out.queries)
    assert report["mean"]["sets"] == 2 and report["mean"]["command"] == "eval 2 rrf_k=1"
    text = tune_table(report)
    assert "tuned on" in text and "held out" in text and "eval 2 rrf_k=1" in text


# One code path: what tune fuses is what `streams eval` searches


class FakeElasticsearch:
    """BM25 answers chunks of A..F in that order, kNN in the reverse order (two chunks a document);
    records every request body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def search(self, index: str, **body: Any) -> dict[str, Any]:
        self.requests.append(body)
        chunks = [hit(f"{d}{n}", f"tickets/ticket/{d}") for d in "ABCDEF" for n in (1, 2)]
        ordered = chunks[::-1] if "knn" in body else chunks
        return {"hits": {"hits": ordered[: body["size"]]}}


def test_fusing_the_shared_hits_ranks_what_the_eval_search_ranks() -> None:
    loaded = LoadedCollection("g", "tickets", {f"d-{d}": f"tickets/ticket/{d}" for d in "ABCDEF"})
    golden = GoldenSet(Path("."), {"q1": "one", "q2": "two"}, {"q1": {"d-A": 1}, "q2": {"d-F": 1}})
    vectors = {"q1": [0.1], "q2": [0.2]}
    setting = SearchTuning(rrf_k=10, bm25_weight=2.0, chunks_per_k=4)
    searched, fetched = FakeElasticsearch(), FakeElasticsearch()
    ranked = asyncio.run(rankings(searched, "idx", golden, vectors, loaded, ["hybrid"], setting))  # type: ignore[arg-type]
    hits = asyncio.run(retrievals(fetched, "idx", golden, vectors, loaded, retrieval_of(setting)))  # type: ignore[arg-type]
    assert {qid: fused_ranking(hits[qid], setting, loaded.corpus_ids()) for qid in golden.queries} == ranked["hybrid"]
    assert ranked["hybrid"]["q1"][0] == "d-A"  # BM25's weight decides
    assert sorted(map(json.dumps, searched.requests)) == sorted(map(json.dumps, fetched.requests))  # the same asks
    assert {"terms": {"groups": ["g"]}} in fetched.requests[0]["query"]["bool"]["filter"]


# The command


def test_the_eval_command_line_reproduces_the_held_out_measurement() -> None:
    setting = SearchTuning(rrf_k=20, bm25_weight=1.5, chunks_per_k=4)
    assert eval_command([Path("/data/scifact")], setting, 3, group="eval-sci", index="scratch") == (
        "streams eval --set /data/scifact --group eval-sci --index scratch --held-out --seed 3 --mode hybrid "
        "--rrf-k 20 --bm25-weight 1.5 --knn-weight 1.0 --chunks-per-k 4"
    )
    assert eval_command([Path("/a"), Path("/b c")], DEFAULT_TUNING, 0).startswith("streams eval --sets '/a,/b c' ")


def test_the_commands_default_grid_is_the_default_grid() -> None:
    from streams.eval.commands import tune

    context = click.Context(tune)
    defaults = {p.name: p.process_value(context, p.get_default(context)) for p in tune.params if p.name in GRID_FIELDS}
    assert defaults == {name: getattr(Grid(), name) for name in GRID_FIELDS}


GRID_FIELDS = ("rrf_k", "bm25_weight", "knn_weight", "chunks_per_k")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--seed", "3"], "give --held-out too"),
        (["eval", "tune", "--rrf-k", "0,10"], "comma-separated values above 0"),
        (["eval", "tune", "--bm25-weight", "one"], "comma-separated float values"),
        (["eval", "tune", "--sets", "a,b", "--group", "g"], "--group is for one set"),
        (["eval", "tune", "--sets", "a,b", "--set", "c"], "give --set or --sets, not both"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output


def test_tune_prints_the_split_and_the_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = beir(tmp_path / "golden", {"test": QUERIES})
    LoadedCollection("eval-g", "tickets", {f"d-{q}": f"tickets/ticket/{q}" for q in QUERIES}).save(directory)

    class Embedder:
        def encode(self, texts: list[str]) -> list[list[float]]:
            return [[0.0] for _ in texts]

    def fake_fetch(*_: Any) -> Any:
        return lambda golden, _: {q: Retrieved([hit(q, f"tickets/ticket/{q}")], []) for q in golden.queries}

    def fake_evaluate(*args: Any) -> dict[str, Any]:
        return {"modes": {"hybrid": {"total": dict.fromkeys(("ndcg@10", "recall@100", "mrr@10", "precision@5"), 1.0)}}}

    monkeypatch.setattr("streams.agents.runtime.embedder_for", lambda *a: Embedder())
    monkeypatch.setattr("streams.clients.elasticsearch_client", lambda *a: _Nothing())
    monkeypatch.setattr("streams.eval.tune_fusion.elasticsearch_fetch", fake_fetch)
    monkeypatch.setattr("streams.eval.run_eval.evaluate_set", fake_evaluate)
    result = CliRunner().invoke(main, ["eval", "tune", "--set", str(directory), "--rrf-k", "20,60"])
    assert result.exit_code == 0, result.output
    split = split_queries(directory, 0)
    assert f"{len(split.tuning.queries)} tuning queries" in result.output
    assert f"{len(split.held_out.queries)} held out" in result.output
    assert f"--set {directory} --group eval-g --held-out --seed 0 --mode hybrid --rrf-k 60" in result.output


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: Any) -> None:
        return None
