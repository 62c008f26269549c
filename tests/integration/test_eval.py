"""Retrieval quality through the real stack: the project's golden set (eval/streams-golden) is loaded as
tickets through Debezium, Kafka and the worker, then measured by `streams eval`.

The floors are regression guards well below the measured figures (README, "Retrieval quality"), not
tuned targets: they catch a search that stopped working (a broken analyzer, vectors that no longer
match the model, a fusion bug), not a small change in quality; `streams eval --baseline` is for that.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.settings import Settings
from tests.integration.helpers import es_client

GOLDEN = Path(__file__).resolve().parents[2] / "eval" / "streams-golden"
GROUP = "eval-golden"
FLOORS = {"hybrid": 0.45, "bm25": 0.35, "knn": 0.35}  # nDCG@10; measured values are in the README

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def loaded_golden_set(worker: Settings) -> Path:
    from streams.eval.commands import eval_

    result = CliRunner().invoke(eval_, ["load", str(GOLDEN), "--group", GROUP, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return GOLDEN


def test_the_local_elasticsearch_has_the_english_analyzer(local_stack: Settings) -> None:
    es = es_client()
    tokens = es.indices.analyze(analyzer="english", text="The vacuuming of tables")["tokens"]
    assert [t["token"] for t in tokens] == ["vacuum", "tabl"]


def test_eval_measures_every_ranking_above_its_floor(loaded_golden_set: Path, tmp_path: Path) -> None:
    from streams.eval.commands import eval_

    saved = tmp_path / "report.json"
    result = CliRunner().invoke(
        eval_, ["--set", str(loaded_golden_set), "--group", GROUP, "--save", str(saved)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    report = json.loads(saved.read_text())
    assert report["queries"] == 62
    for mode, floor in FLOORS.items():
        assert report["modes"][mode]["total"]["ndcg@10"] >= floor, result.output
    # The gate against the report just made passes; against one a little better it fails.
    gate = ["--set", str(loaded_golden_set), "--group", GROUP, "--mode", "bm25", "--baseline", str(saved)]
    assert CliRunner().invoke(eval_, [*gate, "--max-drop", "0.0"]).exit_code == 0
    better = json.loads(saved.read_text())
    better["modes"]["bm25"]["total"]["ndcg@10"] += 0.05
    saved.write_text(json.dumps(better))
    failed = CliRunner().invoke(eval_, [*gate, "--max-drop", "0.02"])
    assert failed.exit_code == 1, failed.output
