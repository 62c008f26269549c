"""The quality gate (`streams eval --baseline FILE --max-drop X`) over saved reports, and the pieces
the eval is built from: the BEIR reader, ranx's metrics and the load record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.eval.golden_set import GoldenSetError, read_corpus, read_golden_set
from streams.eval.load_collection import LoadedCollection, check_group
from streams.eval.report import quality_drops, read_report, table

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def report(name: str) -> dict:  # type: ignore[type-arg]
    return read_report(FIXTURES / name)


def test_gate_passes_when_every_metric_is_within_the_allowed_drop() -> None:
    assert quality_drops(report("baseline.json"), report("within_tolerance.json"), max_drop=0.02) == []


def test_gate_fails_on_a_drop_larger_than_allowed_and_names_it() -> None:
    drops = quality_drops(report("baseline.json"), report("regressed.json"), max_drop=0.02)
    described = [d.describe() for d in drops]
    assert ("hybrid", "ndcg@10") in [(d.mode, d.metric) for d in drops]
    assert any("0.0600 below the baseline 0.7000" in text for text in described)


def test_gate_fails_when_a_measured_ranking_disappears() -> None:
    drops = quality_drops(report("baseline.json"), report("regressed.json"), max_drop=1.0)
    assert {(d.mode, d.current) for d in drops} == {("knn", None)}


def test_gate_checks_only_the_rankings_asked_for() -> None:
    assert quality_drops(report("baseline.json"), report("regressed.json"), max_drop=0.02, modes=["bm25"]) == []
    assert len(quality_drops(report("baseline.json"), report("regressed.json"), 0.02, modes=["hybrid"])) == 1


def test_gate_tolerance_is_exact_at_the_boundary() -> None:
    base = report("baseline.json")
    current = json.loads(json.dumps(base))
    current["modes"]["bm25"]["total"]["ndcg@10"] = 0.58  # exactly 0.02 below
    assert quality_drops(base, current, max_drop=0.02) == []
    current["modes"]["bm25"]["total"]["ndcg@10"] = 0.579
    assert len(quality_drops(base, current, max_drop=0.02)) == 1


def test_gate_rejects_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hits": []}')
    with pytest.raises(GoldenSetError, match="not a `streams eval --json` report"):
        read_report(bad)


@contextmanager
def _an_index_exists(settings: object) -> Iterator[object]:
    """A client that says the index exists: the search itself is replaced below."""
    indices = type("Indices", (), {"exists": lambda self, index: True})()
    yield type("Client", (), {"indices": indices})()


def test_eval_command_exits_non_zero_on_a_regression(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The whole command, with the search replaced by a saved report: the exit status is the gate."""
    from streams.eval import commands, run_eval

    set_dir = tmp_path / "set"
    (set_dir / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (set_dir / name).write_text((FIXTURES / "tiny" / name).read_text())
    LoadedCollection("eval-tiny", "tickets", {"d1": "tickets/ticket/1"}).save(set_dir)
    fake_embedder = type("FakeEmbedder", (), {"encode": lambda self, texts: [[0.0] for _ in texts]})()
    monkeypatch.setattr("streams.agents.runtime.embedder_for", lambda settings, es, index: fake_embedder)
    monkeypatch.setattr("streams.clients.elasticsearch_client", _an_index_exists)
    monkeypatch.setattr(run_eval, "evaluate_set", lambda *args, **kwargs: report("regressed.json"))
    runner = CliRunner()
    args = ["--set", str(set_dir), "--baseline"]
    failed = runner.invoke(commands.eval_, [*args, str(FIXTURES / "baseline.json")])
    assert failed.exit_code == 1, failed.output
    assert "quality gate: hybrid ndcg@10" in failed.output
    monkeypatch.setattr(run_eval, "evaluate_set", lambda *args, **kwargs: report("within_tolerance.json"))
    passed = runner.invoke(commands.eval_, [*args, str(FIXTURES / "baseline.json")])
    assert passed.exit_code == 0, passed.output


def test_golden_set_reads_judged_queries_only_and_drops_zero_grades() -> None:
    golden = read_golden_set(FIXTURES / "tiny")
    assert golden.queries == {"q1": "reclaim storage", "q2": "statistics"}
    assert golden.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert [d.doc_id for d in read_corpus(FIXTURES / "tiny")] == ["d1", "d2", "d3"]


def test_golden_set_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GoldenSetError, match=r"test\.tsv is missing"):
        read_golden_set(tmp_path)


def test_metrics_come_from_ranx_per_query_and_in_total() -> None:
    from streams.eval.metrics import ranking_scores, score_run

    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}}
    run = {"q1": ranking_scores(["d9", "d1"]), "q2": {}}  # q2 found nothing: it still counts, as zero
    total, per_query = score_run(qrels, run)
    assert per_query["q1"]["mrr@10"] == pytest.approx(0.5)
    assert per_query["q2"]["recall@100"] == 0.0
    assert total["mrr@10"] == pytest.approx(0.25)
    assert total["precision@5"] == pytest.approx(0.1)


def test_a_run_that_found_nothing_at_all_scores_zero() -> None:
    """An index generation not filled yet answers nothing: the comparison must score it, not crash."""
    from streams.eval.metrics import METRICS, score_run

    total, per_query = score_run({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {}, "q2": {}})
    assert total == {metric: 0.0 for metric in METRICS}
    assert per_query["q2"] == {metric: 0.0 for metric in METRICS}


def test_table_lists_every_mode() -> None:
    text = table(report("baseline.json") | {"query_texts": {}})
    assert "| hybrid | 0.700 | 0.950 | 0.720 | 0.300 |" in text
    assert "| knn |" in text


def test_load_record_round_trips_and_maps_results_back(tmp_path: Path) -> None:
    LoadedCollection("eval-x", "tickets", {"d1": "tickets/ticket/7"}).save(tmp_path)
    loaded = LoadedCollection.read(tmp_path)
    assert loaded.corpus_ids() == {"tickets/ticket/7": "d1"}
    LoadedCollection("eval-y", "tickets", {}).save(tmp_path)
    with pytest.raises(GoldenSetError, match="2 loaded collections"):
        LoadedCollection.read(tmp_path)


def test_load_refuses_a_seeded_staff_group() -> None:
    with pytest.raises(GoldenSetError, match="seeded staff group"):
        check_group("support")
    check_group("eval-golden")
