"""Several BEIR sets (`streams eval --sets`): the reader's checks, ranx's metrics on a hand-computed
ranking, the per-set and mean report, and staging a seeded slice with its checksums."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.eval.golden_set import GoldenSetError
from streams.eval.metrics import ranking_scores, score_run
from streams.eval.report import quality_drops, read_report
from streams.eval.sets import mean_report, parse_sets, read_beir_set, sets_table, sha256, stage_slice


def beir(directory: Path, corpus: list[str], qrels: list[tuple[str, str, int]], queries: list[str]) -> Path:
    (directory / "qrels").mkdir(parents=True)
    (directory / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": f"t{d}", "text": f"text {d}"}) + "\n" for d in corpus)
    )
    (directory / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": f"q {q}"}) + "\n" for q in queries))
    (directory / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    )
    return directory


def test_metrics_match_a_hand_computed_ranking() -> None:
    # q1: relevant a (2) and b (1); ranked x, a, y, b. q2: relevant c; ranked nothing relevant.
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}}
    run = {"q1": ranking_scores(["x", "a", "y", "b"]), "q2": ranking_scores(["z"])}
    means, per_query = score_run(qrels, run)
    # ranx's nDCG (as trec_eval's, which BEIR reports): linear gains, discount log2(rank + 1)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert per_query["q1"]["ndcg@10"] == pytest.approx(dcg / ideal)
    assert per_query["q1"]["mrr@10"] == pytest.approx(0.5)
    assert per_query["q1"]["precision@5"] == pytest.approx(2 / 5)
    assert per_query["q1"]["recall@100"] == pytest.approx(1.0)
    assert per_query["q2"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "precision@5": 0.0}
    assert means["mrr@10"] == pytest.approx(0.25)
    assert means["ndcg@10"] == pytest.approx(dcg / ideal / 2)


def test_reader_accepts_a_whole_set(tmp_path: Path) -> None:
    golden = read_beir_set(beir(tmp_path / "s", ["a", "b"], [("q1", "a", 1), ("q2", "b", 0)], ["q1", "q2"]))
    assert golden.qrels == {"q1": {"a": 1}} and list(golden.queries) == ["q1"]


def test_reader_names_a_missing_file(tmp_path: Path) -> None:
    directory = beir(tmp_path / "s", ["a"], [("q1", "a", 1)], ["q1"])
    (directory / "queries.jsonl").unlink()
    with pytest.raises(GoldenSetError, match=r"queries\.jsonl is missing"):
        read_beir_set(directory)
    with pytest.raises(GoldenSetError, match="is not a directory"):
        read_beir_set(tmp_path / "nowhere")


def test_reader_names_a_bad_json_line(tmp_path: Path) -> None:
    directory = beir(tmp_path / "s", ["a"], [("q1", "a", 1)], ["q1"])
    with (directory / "corpus.jsonl").open("a") as corpus:
        corpus.write('{"_id": "b", "text": \n')
    with pytest.raises(GoldenSetError, match=r"corpus\.jsonl:2: not JSON"):
        read_beir_set(directory)


def test_reader_names_a_judged_document_the_corpus_lacks(tmp_path: Path) -> None:
    directory = beir(tmp_path / "s", ["a"], [("q1", "a", 1), ("q1", "ghost", 2)], ["q1"])
    with pytest.raises(GoldenSetError, match=r"1 documents missing from corpus\.jsonl: \['ghost'\]"):
        read_beir_set(directory)


def test_sets_are_named_once() -> None:
    assert parse_sets("a, b,") == [Path("a"), Path("b")]
    with pytest.raises(GoldenSetError, match="more than once"):
        parse_sets("a,b,a")
    with pytest.raises(GoldenSetError, match="no directory"):
        parse_sets(" , ")


def set_report(name: str, ndcg: float, p95: float, modes: tuple[str, ...] = ("hybrid", "bm25")) -> dict:  # type: ignore[type-arg]
    total = {"ndcg@10": ndcg, "recall@100": ndcg, "mrr@10": ndcg, "precision@5": ndcg}
    return {
        "set": name,
        "queries": 3,
        "modes": {m: {"total": dict(total), "queries": {}, "latency_ms": {"p95": p95}} for m in modes},
    }


def test_report_has_every_set_and_the_mean() -> None:
    combined = mean_report([set_report("one", 0.5, 10.0), set_report("two", 0.3, 30.0, ("hybrid",))])
    assert [r["set"] for r in combined["sets"]] == ["one", "two"]
    mean = combined["mean"]["modes"]
    assert mean["hybrid"]["total"]["ndcg@10"] == pytest.approx(0.4)
    assert mean["hybrid"]["latency_ms"]["p95"] == pytest.approx(20.0)
    assert mean["hybrid"]["sets"] == 2
    assert mean["bm25"]["total"]["ndcg@10"] == pytest.approx(0.5) and mean["bm25"]["sets"] == 1
    text = sets_table(combined)
    assert "| one (3 q) | hybrid | 0.500 | 0.500 | 0.500 | 0.500 | 10 |" in text
    assert "| mean of 2 | hybrid | 0.400 | 0.400 | 0.400 | 0.400 | 20 |" in text


def test_gate_reads_the_mean_of_a_saved_sets_report(tmp_path: Path) -> None:
    saved = tmp_path / "before.json"
    saved.write_text(json.dumps(mean_report([set_report("one", 0.5, 10.0), set_report("two", 0.5, 10.0)])))
    now = mean_report([set_report("one", 0.5, 10.0), set_report("two", 0.4, 10.0)])["mean"]
    drops = quality_drops(read_report(saved), now, max_drop=0.02)
    assert ("hybrid", "ndcg@10") in [(d.mode, d.metric) for d in drops]
    assert quality_drops(read_report(saved), read_report(saved), max_drop=0.02) == []


def test_stage_keeps_every_judged_query_and_relevant_document(tmp_path: Path) -> None:
    corpus = [f"d{i}" for i in range(50)]
    source = beir(tmp_path / "full", corpus, [("q1", "d3", 1), ("q2", "d40", 2), ("q2", "d41", 0)], ["q1", "q2", "q3"])
    record = stage_slice(source, tmp_path / "cache" / "slice", size=10, seed=7)
    staged = read_beir_set(tmp_path / "cache" / "slice")
    assert staged.qrels == {"q1": {"d3": 1}, "q2": {"d40": 2}}
    kept = [
        json.loads(line)["_id"] for line in (tmp_path / "cache" / "slice" / "corpus.jsonl").read_text().splitlines()
    ]
    assert len(kept) == 10 and {"d3", "d40"} <= set(kept)
    again = stage_slice(source, tmp_path / "cache" / "again", size=10, seed=7)
    assert again["sha256"] == record["sha256"]  # seeded: the same slice
    other = stage_slice(source, tmp_path / "cache" / "other", size=10, seed=8)
    assert other["sha256"]["corpus.jsonl"] != record["sha256"]["corpus.jsonl"]
    written = json.loads((tmp_path / "cache" / "slice" / "checksums.json").read_text())
    assert written["sha256"]["corpus.jsonl"] == sha256(tmp_path / "cache" / "slice" / "corpus.jsonl")
    assert written["source_sha256"]["corpus.jsonl"] == sha256(source / "corpus.jsonl")


def test_stage_refuses_a_slice_smaller_than_the_relevant_documents(tmp_path: Path) -> None:
    source = beir(tmp_path / "full", ["a", "b", "c"], [("q1", "a", 1), ("q1", "b", 1)], ["q1"])
    with pytest.raises(GoldenSetError, match="below the 2 documents"):
        stage_slice(source, tmp_path / "out", size=1)


def test_stage_command_writes_under_the_cache_folder(tmp_path: Path) -> None:
    from streams.eval.commands import eval_

    source = beir(tmp_path / "full", ["a", "b", "c"], [("q1", "a", 1)], ["q1"])
    args = ["stage", "tiny", "--from", str(source), "--slice", "2", "--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(eval_, args)
    assert result.exit_code == 0, result.output
    assert "staged tiny: 1 queries, 2 documents (1 relevant)" in result.output
    assert (tmp_path / "cache" / "tiny" / "checksums.json").exists()
    bad = CliRunner().invoke(eval_, ["stage", "../up", "--from", str(source), "--cache", str(tmp_path / "cache")])
    assert bad.exit_code == 2 and "plain folder name" in bad.output


def test_sets_and_set_together_are_refused(tmp_path: Path) -> None:
    from streams.eval.commands import eval_

    result = CliRunner().invoke(eval_, ["--set", str(tmp_path), "--sets", f"{tmp_path},{tmp_path}/b"])
    assert result.exit_code == 2 and "not both" in result.output
    result = CliRunner().invoke(eval_, ["--sets", f"{tmp_path},{tmp_path}/b", "--group", "g"])
    assert result.exit_code == 2 and "--group is for one set" in result.output


def test_sets_reports_a_broken_set_before_any_query(tmp_path: Path) -> None:
    from streams.eval.commands import eval_

    good = beir(tmp_path / "good", ["a"], [("q1", "a", 1)], ["q1"])
    broken = beir(tmp_path / "broken", ["a"], [("q1", "ghost", 1)], ["q1"])
    result = CliRunner().invoke(eval_, ["--sets", f"{good},{broken}"])
    assert result.exit_code == 1 and "missing from corpus.jsonl: ['ghost']" in result.output


def test_each_ranking_reports_its_p95_latency_beside_the_totals(tmp_path: Path) -> None:
    from streams.elastic.hybrid_index import DEFAULT_TUNING
    from streams.eval.load_collection import LoadedCollection
    from streams.eval.run_eval import build_report

    golden = read_beir_set(beir(tmp_path / "s", ["a", "b"], [("q1", "a", 1)], ["q1"]))
    loaded = LoadedCollection("g", "tickets", {"a": "t1", "b": "t2"})
    latencies = {"hybrid": [0.001 * n for n in range(1, 21)]}  # 1..20 ms: the nearest-rank p95 is 19 ms
    report = build_report(golden, loaded, {"hybrid": {"q1": ["b", "a"]}}, "idx", DEFAULT_TUNING, 0.1, latencies)
    assert report["modes"]["hybrid"]["latency_ms"] == {"p95": 19.0}
    assert "latency_ms" not in report["modes"]["hybrid"]["total"]  # the gate compares totals, higher is better
    assert report["modes"]["hybrid"]["total"]["mrr@10"] == pytest.approx(0.5)


def test_eval_before_any_index_exists_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    import streams.clients
    from streams.eval.commands import eval_
    from streams.eval.load_collection import LoadedCollection

    beir(tmp_path, ["d1"], [("q1", "d1", 1)], ["q1"])
    LoadedCollection("eval-g", "tickets", {"d1": "tickets/ticket/1"}).save(tmp_path)

    class Indices:
        def exists(self, index: str) -> bool:
            return False

    class NoIndex:
        indices = Indices()

    @contextmanager
    def client(settings: object) -> object:
        yield NoIndex()

    monkeypatch.setattr(streams.clients, "elasticsearch_client", client)
    result = CliRunner().invoke(eval_, ["--set", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "no index streams-chunks yet: start the worker" in result.output
