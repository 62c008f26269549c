"""A migration on the real stack: `streams migrate start` builds the next generation (another chunk size)
beside the serving one while the worker writes every live change to both; `compare` runs a small BEIR
set through `streams eval` on both and its gate refuses a switch while the new generation lacks the
set's documents, then passes once an incremental snapshot (the fill's own mechanism) brought them;
a deletion request during the migration reaches both generations and its receipt arrives; `switch`
and `rollback` move the alias while a search loop runs, and not one search fails; `finish` after the
rollback drops the new generation, leaving the stack as it was. A second test migrates to another
model (a three-layer cut of the bundled MiniLM, built by the test): the new generation holds that
model's vectors, a deletion request embeds its probes with each generation's own model and reaches
both, and after the switch `/search` embeds queries with the new model.

The fill of a whole seeded corpus is a measurement (README, "Changing the model or the chunking"), not
this test: the migration starts with --no-snapshot and only the test's rows are re-read."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from elasticsearch import Elasticsearch

from streams.cli import main
from streams.embedding.embedder import default_model_path
from streams.eval.load_collection import LoadedCollection, delete_group
from streams.settings import PROJECT_ROOT, Settings
from streams.sources import edits
from streams.sources.connect import connect_postgres
from streams.sources.snapshot_signal import send_snapshot_signals, snapshot_signal
from tests.integration.helpers import es_client, hybrid, search_api, search_key, unique, wait_until
from tests.integration.test_forget import _receipt, _request_forget

pytestmark = pytest.mark.integration


def cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, f"streams {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def in_process(*args: str, check: bool = True) -> Result:
    """A `streams` command run in this process. The gate's commands (compare, switch) load the embedding
    model, and a fresh interpreter spends about 12 of a compare's 15 s importing it; here it is imported
    once. The command is the same code, read from the same settings."""
    result = CliRunner().invoke(main, list(args))
    if check:
        assert result.exit_code == 0, f"streams {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result


def status() -> dict[str, Any]:
    return dict(json.loads(cli("migrate", "status", "--json").stdout))


def write_set(directory: Path, words: list[str]) -> None:
    """A BEIR set of four tickets, each named by a word only it contains, and a query for each."""
    (directory / "qrels").mkdir(parents=True)
    with open(directory / "corpus.jsonl", "w") as corpus, open(directory / "queries.jsonl", "w") as queries:
        for n, word in enumerate(words):
            corpus.write(
                json.dumps(
                    {
                        "_id": f"d{n}",
                        "title": f"Case {word}",
                        "text": f"The {word} gateway drops sessions after an hour.",
                    }
                )
                + "\n"
            )
            queries.write(json.dumps({"_id": f"q{n}", "text": f"{word} gateway"}) + "\n")
    rows = "".join(f"q{n}\td{n}\t1\n" for n in range(len(words)))
    (directory / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)


def index_count(es: Any, index: str, query: dict[str, Any]) -> int:
    es.indices.refresh(index=index)
    return int(es.count(index=index, query=query)["count"])


class SearchLoop:
    """/search for one word, as fast as one client asks, until stopped: every answer must be a 200 that
    finds the word's document; the indices that served the hits are recorded (provenance)."""

    def __init__(self, word: str, document_id: str) -> None:
        self.word, self.document_id = word, document_id
        self.searches = 0
        self.failures: list[str] = []
        self.indices: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._key = search_key()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                code, _, body = search_api({"q": self.word, "k": "10"}, f"Bearer {self._key}")
            except Exception as exc:  # a refused connection or a timeout is a failed search too
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.searches += 1
            hits = body.get("hits", []) if code == 200 else []
            ours = [hit for hit in hits if hit["document_id"] == self.document_id]
            if code != 200 or not ours:
                self.failures.append(f"{code}: {str(body)[:200]}")
                continue
            self.indices.update(chunk["provenance"]["index"] for chunk in ours[0]["chunks"])

    def __enter__(self) -> SearchLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def _workers_applied(es: Elasticsearch, settings: Settings) -> bool:
    """Whether every live worker has applied the current migration record (worker registry)."""
    import asyncio

    from streams.agents.runtime import migration_record
    from streams.clients import async_elasticsearch_client
    from streams.elastic.worker_registry import behind_migration, live_workers

    async def read_live() -> dict:  # type: ignore[type-arg]
        async with async_elasticsearch_client(settings) as client:
            since = datetime.now(UTC) - timedelta(seconds=settings.worker_liveness_s)
            return await live_workers(client, settings.workers_index, since)

    migration = migration_record(settings)
    live = asyncio.run(read_live())
    return bool(live) and not behind_migration(live, migration.version if migration else 0)


@pytest.fixture
def migration(worker: Settings) -> Iterator[Settings]:
    before = status()
    assert before["state"] == "none", f"a migration is already running: {before}"
    try:
        yield worker
    finally:
        now = status()
        if now["state"] != "none":
            if now["serving"] != before["serving"]:
                cli("migrate", "rollback", check=False)
            cli("migrate", "finish", "--yes", check=False)


def test_migration_forget_reaches_both_generations_and_switch_rollback_fail_no_search(
    migration: Settings, tmp_path: Path
) -> None:
    settings = migration
    es = es_client(settings)
    words = [unique("mg") for _ in range(4)]
    group = f"migrate-{unique('g')}"
    write_set(tmp_path, words)
    cli("eval", "load", str(tmp_path), "--group", group)  # indexed in the serving generation only
    loaded = LoadedCollection.read(tmp_path, group)
    try:
        _migrate(settings, es, tmp_path, group, words, loaded)
    finally:
        with connect_postgres(settings.dsn("tickets"), name="tickets") as conn:
            delete_group(conn, group)


def _migrate(
    settings: Settings, es: Any, set_dir: Path, group: str, words: list[str], loaded: LoadedCollection
) -> None:
    old = status()["serving"]
    cli("migrate", "start", "--chunk-max-tokens", "96", "--chunk-overlap-tokens", "16", "--no-snapshot")
    started = status()
    new = started["target"]
    assert started["state"] == "filling" and new != old and started["serving"] == old
    assert started["generations"][new]["config"]["chunk_max_tokens"] == 96

    # The gate must be able to fail: the new generation has none of the set's documents yet.
    compared = json.loads(in_process("migrate", "compare", "--set", str(set_dir), "--group", group, "--json").stdout)
    assert not compared["passed"] and compared["sets"][0]["drops"], compared
    refused = in_process("migrate", "switch", "--set", str(set_dir), "--group", group, check=False)
    assert refused.exit_code != 0 and "quality gate failed" in refused.stderr, refused.output
    assert status()["serving"] == old

    # Live changes reach both generations, each chunked its own way.
    email = f"migrate.{unique('p')}@example.com"
    secret = unique("mw")
    ticket = edits.add_ticket(f"Badge {secret}", f"The {secret} badge reader rejects {email}.", email, ["support"])
    contact = edits.add_contact("Ines", unique("n").title(), email, ["sales"])
    edits.add_note(contact, f"rep.{unique('r')}@example.com", f"Ines asked about the {secret} badge.")
    in_text = {"match": {"text": secret}}
    for index in (old, new):
        assert wait_until(lambda i=index: index_count(es, i, in_text) >= 2, timeout=120), f"{secret} not in {index}"
    provenance = es.search(index=new, size=1, query={"bool": {"filter": [{"term": {"kind": "chunk"}}, in_text]}})
    assert provenance["hits"]["hits"][0]["_source"]["generation"] == int(new.rsplit("-v", 1)[1])

    # The fill's mechanism (an incremental snapshot through the signal table) brings the set's rows over.
    ids = [int(document.rsplit("/", 1)[1]) for document in loaded.documents.values()]
    namespace = "public"
    send_snapshot_signals(settings, "tickets", [snapshot_signal(f"{namespace}.tickets", "id", ids)], purpose="test")
    by_group = {"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"groups": group}}]}}
    assert wait_until(lambda: index_count(es, new, by_group) >= len(words), timeout=180), "the snapshot never arrived"
    compared = json.loads(in_process("migrate", "compare", "--set", str(set_dir), "--group", group, "--json").stdout)
    assert compared["passed"], compared
    assert set(compared["sets"][0]["totals"]) == {old, new}

    # A deletion request during the migration reaches both generations, and its receipt says so.
    request_id, start = _request_forget(settings, email)
    receipt = _receipt(settings, request_id, start, timeout=180)
    assert receipt["status"] == "unsearchable" and receipt["error"] is None, receipt
    removed = {row["index"] for row in receipt["removed"] if row["chunks"]}
    assert {old, new} <= removed, receipt["removed"]
    for index in (old, new):
        assert index_count(es, index, {"term": {"subjects": f"email:{email}"}}) == 0, index
        assert index_count(es, index, {"match_phrase": {"text": email}}) == 0, index
    assert not {hit["document_id"] for hit in hybrid(secret, k=20)["hits"]} & {f"tickets/ticket/{ticket}"}

    # Switch and roll back with a client searching all the while.
    corpus_id = next(iter(loaded.documents))
    with SearchLoop(words[int(corpus_id[1:])], loaded.documents[corpus_id]) as loop:
        assert wait_until(lambda: old in loop.indices, timeout=30), (loop.indices, loop.failures[:5])
        in_process("migrate", "switch", "--set", str(set_dir), "--group", group)
        assert status()["serving"] == new
        assert wait_until(lambda: new in loop.indices, timeout=30), loop.indices
        cli("migrate", "rollback")
        assert status()["serving"] == old
        served_new = new in loop.indices
        loop.indices.clear()
        assert wait_until(lambda: old in loop.indices, timeout=30), loop.indices
    assert served_new and loop.searches >= 10 and loop.failures == [], (loop.searches, loop.failures[:5])

    cli("migrate", "finish", "--yes")
    assert status()["state"] == "none" and status()["serving"] == old
    assert not es.indices.exists(index=new)


@pytest.fixture(scope="session")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another sentence encoder, made here (nothing can be downloaded): the bundled MiniLM cut to its
    first three layers, with the same tokenizer, mean pooling and normalization (so every backend,
    ONNX included, can run it). Its vectors differ from the full model's."""
    from sentence_transformers import SentenceTransformer

    target = tmp_path_factory.mktemp("models") / "minilm-l3"
    model = SentenceTransformer(str(default_model_path("all-MiniLM-L6-v2")), device="cpu")
    bert: Any = model[0].auto_model
    bert.encoder.layer = bert.encoder.layer[:3]
    bert.config.num_hidden_layers = 3
    model.save(str(target))
    return target


def _chunk_vectors(es: Any, index: str, document_id: str) -> dict[str, list[float]]:
    es.indices.refresh(index=index)
    hits = es.search(
        index=index,
        size=100,
        query={"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"document_id": document_id}}]}},
    )["hits"]["hits"]
    return {hit["_source"]["text_hash"]: hit["_source"]["vector"] for hit in hits}


def test_migration_to_another_model_embeds_with_it_and_forgets_in_both(migration: Settings, second_model: Path) -> None:
    settings = migration
    es = es_client(settings)
    old = status()["serving"]
    cli("migrate", "start", "--model", str(second_model), "--no-snapshot")
    started = status()
    new = started["target"]
    assert started["generations"][new]["config"]["model_path"] == str(second_model.resolve())

    # A live change is written to both generations, each with its own model's vectors.
    email = f"model.{unique('p')}@example.com"
    secret = unique("mm")
    ticket = edits.add_ticket(f"Printer {secret}", f"The {secret} printer jams for {email}.", email, ["support"])
    document = f"tickets/ticket/{ticket}"
    assert wait_until(lambda: all(_chunk_vectors(es, i, document) for i in (old, new)), timeout=180)
    before, after = _chunk_vectors(es, old, document), _chunk_vectors(es, new, document)
    assert before.keys() == after.keys()  # same chunking, other model: no vector reused
    for text in before:
        cosine = sum(a * b for a, b in zip(before[text], after[text], strict=True))
        assert cosine < 0.99, f"chunk {text} has the old model's vector in {new} (cosine {cosine:.4f})"

    # A deletion request reaches both generations, each verified with its own model's probes.
    request_id, start = _request_forget(settings, email)
    receipt = _receipt(settings, request_id, start, timeout=240)
    assert receipt["status"] == "unsearchable" and receipt["error"] is None, receipt
    assert {old, new} <= {row["index"] for row in receipt["removed"] if row["chunks"]}, receipt["removed"]
    for index in (old, new):
        assert index_count(es, index, {"match_phrase": {"text": email}}) == 0, index

    # After the switch, /search embeds the query with the new model and finds a new ticket there.
    word = unique("ms")
    requester = f"x.{unique()}@example.com"
    scanner = edits.add_ticket(f"Scanner {word}", f"The {word} scanner is offline.", requester, ["support"])
    other = f"tickets/ticket/{scanner}"
    assert wait_until(lambda: all(_chunk_vectors(es, i, other) for i in (old, new)), timeout=180)
    in_process("migrate", "switch", "--force")
    assert status()["serving"] == new
    # The worker follows the record every worker_heartbeat_s: search once it has applied the switch.
    assert wait_until(lambda: _workers_applied(es, settings), timeout=60), "the worker never applied the switch"
    with SearchLoop(word, other) as loop:
        assert wait_until(lambda: loop.searches >= 5, timeout=60), loop.failures[:5]
    assert loop.failures == [] and loop.indices == {new}, (loop.indices, loop.failures[:5])
    cli("migrate", "rollback")
    cli("migrate", "finish", "--yes")
    assert status()["state"] == "none" and status()["serving"] == old
    assert not es.indices.exists(index=new)
