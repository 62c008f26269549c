"""The golden set on the real applications: a slice of eval/streams-golden loaded with
`streams eval load --source applications` (its wiki documents as MediaWiki pages through the action
API, its tickets as RT tickets through REST 2), waited for until searchable, then scored by
`streams eval` as the load's access groups. The scores must be sane, and they must collapse when the
record of which page or ticket each BEIR id became is scrambled, or when the eval asks as groups that
do not hold the load (the wiki's main namespace, RT's General queue). On the whole local stack;
skipped unless STREAMS_STACK_APPS names both applications."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams.eval.commands import eval_
from streams.eval.golden_set import read_corpus, read_golden_set
from streams.eval.load_collection import LoadedCollection, indexed_count
from streams.settings import Settings, get_settings
from tests.integration.conftest import local_stack, worker  # noqa: F401  (the session's stack and worker)
from tests.integration.helpers import es_client, unique

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not {"mediawiki", "request-tracker"} <= set(get_settings().stack_apps),
        reason="STREAMS_STACK_APPS does not name mediawiki and request-tracker",
    ),
]
GOLDEN = Path(__file__).resolve().parents[2] / "eval" / "streams-golden"
QUERIES_PER_KIND = 4  # wiki queries and ticket queries each
OTHER_DOCUMENTS = 10  # unjudged documents beside the relevant ones, so a ranking has something to get wrong


def _slice(target: Path) -> Path:
    """The first few wiki and ticket queries, their relevant documents and a seeded few others."""
    golden = read_golden_set(GOLDEN)
    queries = [q for q in golden.queries if q.startswith("wiki-")][:QUERIES_PER_KIND]
    queries += [q for q in golden.queries if q.startswith("ticket-")][:QUERIES_PER_KIND]
    relevant = {doc for q in queries for doc in golden.qrels[q]}
    others = sorted(d.doc_id for d in read_corpus(GOLDEN) if d.doc_id not in relevant)
    keep = relevant | set(random.Random(7).sample(others, OTHER_DOCUMENTS))
    (target / "qrels").mkdir(parents=True)
    rows = [line for line in (GOLDEN / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    (target / "corpus.jsonl").write_text(
        "".join(row + "\n" for row in rows if json.loads(row)["_id"] in keep), encoding="utf-8"
    )
    (target / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": golden.queries[q]}) + "\n" for q in queries), encoding="utf-8"
    )
    (target / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{doc}\t{score}\n" for q in queries for doc, score in sorted(golden.qrels[q].items())),
        encoding="utf-8",
    )
    return target


def _eval(set_dir: Path, group: str, report: Path) -> dict[str, Any]:
    result = CliRunner().invoke(eval_, ["--set", str(set_dir), "--group", group, "--save", str(report)])
    assert result.exit_code == 0, result.output
    totals: dict[str, Any] = {mode: f["total"] for mode, f in json.loads(report.read_text())["modes"].items()}
    return totals


def test_the_golden_set_loaded_into_the_applications_scores_through_their_groups(
    worker: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    set_dir = _slice(tmp_path / "slice")
    group = unique("eval-apps")
    loaded_run = CliRunner().invoke(
        eval_, ["load", str(set_dir), "--source", "applications", "--group", group, "--stall", "600", "--json"]
    )
    assert loaded_run.exit_code == 0, loaded_run.output
    loaded = LoadedCollection.read(set_dir, group)
    corpus = [d.doc_id for d in read_corpus(set_dir)]
    assert set(loaded.documents) == set(corpus)
    assert all(v.startswith("mediawiki/page/") for k, v in loaded.documents.items() if k.startswith("wiki:"))
    assert all(v.startswith("rt/ticket/") for k, v in loaded.documents.items() if k.startswith("ticket:"))
    assert loaded.search_groups == [f"mediawiki-group:{group}", f"queue:{group}"]

    # Loading again finds the earlier load and only checks that it is searchable.
    again = CliRunner().invoke(eval_, ["load", str(set_dir), "--source", "applications", "--group", group, "--json"])
    assert again.exit_code == 0, again.output
    assert '"already_loaded": true' in again.output

    scores = _eval(set_dir, group, tmp_path / "apps.json")
    # The slice's queries name their documents' error messages and manual index terms: BM25 and the
    # fusion find most of them first (the full set scores about 0.9 on the invented sources).
    assert scores["hybrid"]["ndcg@10"] >= 0.6, scores
    assert scores["bm25"]["ndcg@10"] >= 0.6, scores
    assert scores["knn"]["recall@100"] >= 0.6, scores

    # The check can fail: with the record of which document each BEIR id became scrambled (each id
    # given another's page or ticket), the same rankings score next to nothing.
    ids = sorted(loaded.documents)
    scrambled = dict(zip(ids, [loaded.documents[i] for i in ids[1:] + ids[:1]], strict=True))
    LoadedCollection(f"{group}-scrambled", loaded.source, scrambled, loaded.access_groups).save(set_dir)
    broken = _eval(set_dir, f"{group}-scrambled", tmp_path / "scrambled.json")
    assert broken["hybrid"]["ndcg@10"] < scores["hybrid"]["ndcg@10"] / 2, (broken, scores)

    # And access follows the applications: asked as the wiki's main namespace and RT's General queue,
    # the eval sees none of the load (its pages are restricted to the group, its tickets in its queue).
    outsider = LoadedCollection(f"{group}-outsider", loaded.source, loaded.documents, ("namespace:0", "queue:General"))
    outsider.save(set_dir)
    unseen = _eval(set_dir, f"{group}-outsider", tmp_path / "outsider.json")
    assert unseen["hybrid"]["recall@100"] == 0.0, unseen

    # --replace deletes the load the applications' way (pages deleted, tickets given RT's deleted
    # status), waits until the index has none of it, and loads again as new pages and tickets.
    replaced = CliRunner().invoke(
        eval_,
        ["load", str(set_dir), "--source", "applications", "--group", group, "--replace", "--stall", "600", "--json"],
    )
    assert replaced.exit_code == 0, replaced.output
    reloaded = LoadedCollection.read(set_dir, group)
    assert set(reloaded.documents) == set(corpus) and not set(reloaded.documents.values()) & set(
        loaded.documents.values()
    ), (loaded.documents, reloaded.documents)
    assert indexed_count(es_client(), worker.index_alias, loaded.search_groups, list(loaded.documents.values()))[0] == 0
    assert _eval(set_dir, group, tmp_path / "replaced.json")["hybrid"]["ndcg@10"] >= 0.6
