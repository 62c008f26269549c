"""`streams verify`: compare every source database with the index, and `--repair` what drifted.

The comparison itself (and the reading of the index) is streams/elastic/verify_index.py; the
sources are read through streams/sources/read_rows.py; this module joins the two, asks Debezium
for incremental snapshots of drifted rows, and prints the result.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from streams.cli import number_option
from streams.elastic.verify_index import (
    CATEGORIES,
    PAGE,
    REPAIRABLE,
    SIGNAL_KEYS,
    SourceDocument,
    SourceReport,
    compare,
    indexed_document_pages,
    persisting,
    read_index_page,
    source_pages,
)
from streams.pipeline.document_mapping import DocumentMapping, Mappings
from streams.records import PartChange
from streams.settings import Settings, configured_mappings, get_settings
from streams.sources.read_paths import PartFailure, PathReader, dialect_of
from streams.sources.read_rows import SourceRows, typed_key
from streams.sources.snapshot_signal import send_snapshot_signals, snapshot_signal
from streams.topics import source_namespace

log = logging.getLogger(__name__)


def verify_source(settings: Settings, client: Any, mappings: Mappings, source: str, page: int = PAGE) -> SourceReport:
    """One source against the index, a page at a time (see the module docstring)."""

    mapping = next(m for m in mappings.sources if m.source == source)
    tables = {d.kind: d for d in mapping.documents}
    alias = settings.index_alias
    report = SourceReport(source)
    with SourceRows(settings, source, page) as rows:
        for document in mapping.documents:
            pages = path_pages if document.reads_paths else source_pages
            for documents in pages(rows, mappings, source, document):
                # A row that is no document (the mapping's where, unless) must not be in the index.
                held = {document_id: found for document_id, found in documents.items() if found is not None}
                report.add(compare(source, tables, held, read_index_page(client, alias, list(documents))))
        for ids in indexed_document_pages(client, alias, source, page):
            gone: list[str] = []
            by_kind: dict[str, list[str]] = {}
            for document_id in ids:
                _, kind, key = document_id.split("/", 2)
                if kind in tables:
                    by_kind.setdefault(kind, []).append(key)
                else:
                    gone.append(document_id)  # a kind no mapping makes any more
            for kind, keys in by_kind.items():
                document = tables[kind]
                present = rows.existing(document.table, document.key, [typed_key(k) for k in keys])
                gone.extend(document.document_id(source, k) for k in keys if k not in present)
            # Rows that exist were compared in the first pass; only the vanished ones are left.
            report.add(compare(source, tables, {}, read_index_page(client, alias, gone)))
    return report


def path_pages(
    rows: Any, mappings: Mappings, source: str, document: DocumentMapping
) -> Iterator[dict[str, SourceDocument | None]]:
    """A path document's pages, read through the function the worker's triggers read through; None for
    a row that is no document (where, unless)."""
    mapping = next(m for m in mappings.sources if m.source == source)
    reader = PathReader(
        mapping, dialect_of("mysql" if rows.mariadb else "postgres"), rows.query, rows.max_bytes, mappings
    )
    for page in rows.pages(document.table, document.key):
        documents: dict[str, SourceDocument | None] = {}
        for document_id, outcomes in reader.read_documents(document, [row[document.key] for row in page]).items():
            if any(o.part_id == "root" and isinstance(o, PartChange) and o.deleted for o in outcomes):
                documents[document_id] = None
                continue
            found = documents[document_id] = SourceDocument()
            for outcome in outcomes:
                if isinstance(outcome, PartFailure):
                    # The worker dead-lettered this part too: it cannot match the index.
                    found.hashes[outcome.part_id] = f"unmappable ({outcome.error.reason})"
                    if outcome.part_id != "root":
                        found.parts.add(outcome.part_id)
                elif not outcome.deleted:
                    found.hashes[outcome.part_id] = outcome.content_hash
                    if outcome.part_id != "root":
                        found.parts.add(outcome.part_id)
        yield documents


def verify_all(settings: Settings, client: Any, mappings: Mappings) -> list[SourceReport]:
    client.indices.refresh(index=settings.index_alias)
    return [verify_source(settings, client, mappings, mapping.source) for mapping in mappings.sources]


# -- repairing: incremental snapshots of the drifted rows --------------------------------------------


def repair_signals(settings: Settings, mappings: Mappings, report: SourceReport, rows: Any) -> list[dict[str, Any]]:
    """execute-snapshot signals that re-read every row of the report's missing and stale documents:
    the root rows by key, `each` children by parent, `latest` children by their newest key."""

    mapping = next(m for m in mappings.sources if m.source == report.source)
    tables = {d.kind: d for d in mapping.documents}
    namespace = source_namespace(report.source, settings)
    keys_by_kind: dict[str, list[Any]] = {}
    for category in REPAIRABLE:
        for issue in report.issues[category]:
            _, kind, key = issue.document_id.split("/", 2)
            if kind in tables and typed_key(key) not in keys_by_kind.setdefault(kind, []):
                keys_by_kind[kind].append(typed_key(key))
    signals: list[dict[str, Any]] = []
    for kind, keys in sorted(keys_by_kind.items()):
        document = tables[kind]
        keys = sorted(keys, key=lambda k: (isinstance(k, str), k))
        for start in range(0, len(keys), SIGNAL_KEYS):
            batch = keys[start : start + SIGNAL_KEYS]
            # A path document's root row re-reads all of its parts when it comes back (read_paths.py).
            signals.append(snapshot_signal(f"{namespace}.{document.table}", document.key, batch))
            for child in document.children:
                if child.mode == "latest":
                    found = rows.newest_children(child.table, child.key, child.parent, batch)
                    newest = [row[child.key] for row in found]
                    if newest:
                        signals.append(snapshot_signal(f"{namespace}.{child.table}", child.key, newest))
                else:
                    signals.append(snapshot_signal(f"{namespace}.{child.table}", child.parent, batch))
    return signals


def repair(
    settings: Settings, mappings: Mappings, reports: list[SourceReport], say: Callable[[str], None] = print
) -> dict[str, int]:
    """Request incremental snapshots of every repairable drifted document; documents asked for, per source."""

    asked: dict[str, int] = {}
    for report in reports:
        documents = {i.document_id for c in REPAIRABLE for i in report.issues[c]}
        if not documents:
            continue
        with SourceRows(settings, report.source) as rows:
            signals = repair_signals(settings, mappings, report, rows)
        ids = send_snapshot_signals(settings, report.source, signals)
        asked[report.source] = len(documents)
        say(
            f"repair: {report.source}: incremental snapshot of {len(documents)} document(s) requested "
            f"({len(ids)} signal(s) in {settings.signal_table}); they come back through the worker"
        )
        unrepairable = sum(len(report.issues[c]) for c in CATEGORIES if c not in REPAIRABLE)
        if unrepairable:
            say(f"repair: {report.source}: {unrepairable} extra/resurrected document(s) have no row to snapshot")
    return asked


# -- the command --------------------------------------------------------------------------------


def worker_backlog(settings: Settings, mappings: Mappings) -> int | None:
    """Messages the worker's group has not yet acknowledged on the topics it indexes from (Debezium's
    and the repartition topic); None when Kafka cannot say. While it is above zero, a row that differs
    may only be on its way into the index."""
    from streams.observability.consumer_lag import worker_lag_reader
    from streams.topics import source_topics

    try:
        reader = worker_lag_reader(settings, mappings)
        try:
            lag = reader.lag([*source_topics(mappings, settings), settings.routed_topic, settings.backfill_topic])
        finally:
            reader.close()
    except Exception as exc:  # verify's verdict stands without it; the hint is a courtesy
        logging.getLogger(__name__).debug("consumer lag unavailable: %s", exc)
        return None
    return sum(lag.values())


def verdict(reports: list[SourceReport], backlog: int | None) -> str:
    if all(r.ok for r in reports):
        return "index consistent with the sources"
    if backlog:
        return (
            f"index and sources differ, but the worker is {backlog} message(s) behind: the differing rows may be "
            "in flight (run again once it has caught up, or with --recheck)"
        )
    return "index and sources differ"


def report_json(reports: list[SourceReport], limit: int, backlog: int | None) -> dict[str, Any]:
    """The report with at most `limit` issues listed per category and source, each category's count beside."""
    sources = []
    for r in reports:
        body = r.to_json()
        for category in CATEGORIES:
            body[category] = body[category][:limit]
        body["counts"] = {category: len(r.issues[category]) for category in CATEGORIES}
        sources.append(body)
    ok = all(r.ok for r in reports)
    return {
        "ok": ok,
        "limit": limit,
        "worker_backlog": backlog,
        "in_flight": bool(backlog) and not ok,
        "verdict": verdict(reports, backlog),
        "sources": sources,
    }


def _print_table(reports: list[SourceReport], limit: int, backlog: int | None = None) -> None:
    header = f"{'source':<10}{'rows':>8}{'indexed':>9}{'forgotten':>10}{'unverified':>11}" + "".join(
        f"{c:>13}" for c in CATEGORIES
    )
    click.echo(header)
    click.echo("-" * len(header))
    for r in reports:
        counts = "".join(f"{len(r.issues[c]):>13}" for c in CATEGORIES)
        click.echo(
            f"{r.source:<10}{r.source_documents:>8}{r.indexed_documents:>9}{r.forgotten:>10}{r.unverified:>11}{counts}"
        )
    for r in reports:
        for category in CATEGORIES:
            for issue in r.issues[category][:limit]:
                click.echo(f"  {category:<12}{issue.document_id}: {issue.reason}")
            if len(r.issues[category]) > limit:
                click.echo(f"  {category:<12}... and {len(r.issues[category]) - limit} more in {r.source}")
    click.echo(verdict(reports, backlog))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@number_option(
    "--recheck",
    default=0.0,
    at_least=0,
    help="Seconds to wait before checking again; only drift seen both times is reported (changes in flight settle).",
)
@number_option(
    "--limit",
    default=20,
    at_least=0,
    help="Issues listed per category and source, in the table and in JSON (the counts are always whole).",
)
@click.option(
    "--repair",
    "repair_drift",
    is_flag=True,
    help="Ask Debezium for an incremental snapshot of every missing or stale document (through each source's "
    "signal table), so the worker re-applies them; run verify again once it has caught up.",
)
def verify(as_json: bool, recheck: float, limit: int, repair_drift: bool) -> None:
    """Compare every source database with the index, content included: missing, stale, extra, resurrected.

    Stale includes a lost update: each part's state stores a hash of the row content it applied,
    and verify hashes the source rows with the same mapping and compares. Rows are read in pages.
    Exits 1 when anything is off, 0 when the index matches the sources.

    \b
    Examples:
      streams verify
      streams verify --json --recheck 5
      streams verify --repair && sleep 30 && streams verify
    """
    from elasticsearch import ApiError, TransportError

    from streams.clients import elasticsearch_client
    from streams.sources.connect import SourceUnavailable

    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    settings = get_settings()
    mappings = configured_mappings(settings)
    client = elasticsearch_client(settings)
    try:
        reports = verify_all(settings, client, mappings)
        if recheck and not all(r.ok for r in reports):
            time.sleep(recheck)
            reports = persisting(reports, verify_all(settings, client, mappings))
        if repair_drift and not all(r.ok for r in reports):
            repair(settings, mappings, reports, say=lambda line: click.echo(line, err=as_json))
    except SourceUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except (ApiError, TransportError) as exc:
        raise click.ClickException(f"Elasticsearch at {settings.elasticsearch_location()}: {exc}") from exc
    backlog = None if all(r.ok for r in reports) else worker_backlog(settings, mappings)
    if as_json:
        click.echo(json.dumps(report_json(reports, limit, backlog), indent=2))
    else:
        _print_table(reports, limit, backlog)
    sys.exit(0 if all(r.ok for r in reports) else 1)
