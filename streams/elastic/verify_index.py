"""`streams verify`: compare every source database with the index, content included.

Per source, the rows are read in keyset pages (streams/sources/read_rows.py) and each page is
compared with the index's state records and visible chunks for the same documents; then the index's
documents of that source are walked in pages (a composite aggregation) to find those whose row is
gone. Nothing is loaded whole. Four kinds of drift are reported:

- missing: the root row exists but the index does not have it as a visible document (no state
  record, or a state whose root is absent or deleted), or the state expects chunks that are not in
  the index (chunks lost behind the worker's back). A row whose text is empty has no chunks and is
  not missing: the state record is what counts.
- stale: the index holds another content than the source. Every part's state stores the content
  hash of the row it applied (PartChange.content_hash: text, title, groups, metadata, subjects,
  link); verify hashes each source row with the same mapping code and compares, so a lost update
  shows. Also stale: child parts added or deleted in the source but not in the index, and for
  `latest` children (the wiki's revisions) another revision than the newest.
- extra: visible documents in the index whose root row no longer exists in the source.
- resurrected: visible chunks of a document whose state says its root was deleted.

Documents whose root was suppressed by a deletion request are counted as `forgotten`, not as drift;
parts whose state holds no content hash (written before content hashes existed, or scrubbed by a
deletion request) are counted as `unverified`. The comparison is a snapshot of a moving system:
changes in flight show as drift until applied, so `--recheck S` reports only what is still off S
seconds later.

`--repair` does not write the index: it asks Debezium for an incremental snapshot of exactly the
drifted rows (an `execute-snapshot` signal with `additional-conditions` in the source's signal
table), so they come back through the normal pipeline, ordered by their versions like any change.
A snapshot can only bring rows that exist: `extra` and `resurrected` documents are reported, not
repaired.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

from streams.errors import StreamsError
from streams.pipeline.document_mapping import DocumentMapping, Mappings, load_mappings
from streams.records import ChangeEvent, Op
from streams.settings import PROJECT_ROOT, Settings, get_settings

CATEGORIES = ("missing", "stale", "extra", "resurrected")
REPAIRABLE = ("missing", "stale")
PAGE = 500
SIGNAL_KEYS = 500  # keys per execute-snapshot signal, so one filter stays a modest SQL clause


# -- snapshots ----------------------------------------------------------------------------------


@dataclass
class SourceDocument:
    """What the source holds for one document: its child part ids, for `latest` children the newest
    key, and the content hash of every part (the root's included) as the mapping makes it."""

    parts: set[str] = field(default_factory=set)
    latest: dict[str, int] = field(default_factory=dict)  # part id -> newest child key
    hashes: dict[str, str] = field(default_factory=dict)  # part id -> content hash


@dataclass
class IndexedDocument:
    """What the index holds for one document: its state record (if any) and its visible chunks
    (counted per part where known; verify's paged reader counts them per document, under "*")."""

    state: dict[str, Any] | None = None
    visible_chunks: dict[str, int] = field(default_factory=dict)

    @property
    def visible_total(self) -> int:
        return sum(self.visible_chunks.values())


@dataclass
class Issue:
    document_id: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"document_id": self.document_id, "reason": self.reason}


@dataclass
class SourceReport:
    source: str
    source_documents: int = 0
    indexed_documents: int = 0
    forgotten: int = 0
    unverified: int = 0  # parts whose state holds no content hash to compare
    issues: dict[str, list[Issue]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})

    @property
    def ok(self) -> bool:
        return not any(self.issues.values())

    def add(self, other: SourceReport) -> None:
        self.source_documents += other.source_documents
        self.indexed_documents += other.indexed_documents
        self.forgotten += other.forgotten
        self.unverified += other.unverified
        for category in CATEGORIES:
            self.issues[category].extend(other.issues[category])

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_documents": self.source_documents,
            "indexed_documents": self.indexed_documents,
            "forgotten": self.forgotten,
            "unverified": self.unverified,
            **{c: [i.to_json() for i in self.issues[c]] for c in CATEGORIES},
            "ok": self.ok,
        }


# -- reading the sources, a page of documents at a time -------------------------------------------


def _row_change_hash(mappings: Mappings, source: str, table: str, key_column: str, row: dict[str, Any]) -> str:
    """The content hash the worker would store for this row: the same mapping code, fed a snapshot read."""
    event = ChangeEvent(
        source=source,
        table=table,
        op=Op.READ,
        key={key_column: row.get(key_column)},
        before=None,
        after=row,
        version=0,
        commit_ts=datetime.now(UTC),
        snapshot=True,
    )
    try:
        change = mappings.part_change(event)
    except StreamsError as exc:  # the worker could not map this row either: it cannot match the index
        return f"unmappable ({exc.reason})"
    return change.content_hash if change is not None else ""


def source_pages(
    rows: Any, mappings: Mappings, source: str, document: DocumentMapping
) -> Iterator[dict[str, SourceDocument]]:
    """The documents of one root table, a page at a time, keyed by document id."""
    for page in rows.pages(document.table, document.key):
        documents: dict[str, SourceDocument] = {}
        keys = [row[document.key] for row in page]
        for row in page:
            found = documents[document.document_id(source, row[document.key])] = SourceDocument()
            found.hashes["root"] = _row_change_hash(mappings, source, document.table, document.key, row)
        for child in document.children:
            if child.mode == "latest":
                for row in rows.newest_children(child.table, child.key, child.parent, keys):
                    owner = documents.get(document.document_id(source, row[child.parent]))
                    if owner is not None:
                        owner.parts.add(child.table)
                        owner.latest[child.table] = int(row[child.key])
                        owner.hashes[child.table] = _row_change_hash(mappings, source, child.table, child.key, row)
            else:
                for row in rows.children(child.table, child.parent, keys):
                    owner = documents.get(document.document_id(source, row[child.parent]))
                    if owner is not None:
                        part_id = f"{child.table}/{row[child.key]}"
                        owner.parts.add(part_id)
                        owner.hashes[part_id] = _row_change_hash(mappings, source, child.table, child.key, row)
        yield documents


# -- reading the index, for a page of documents -----------------------------------------------------


def read_index_page(client: Any, alias: str, document_ids: Sequence[str]) -> dict[str, IndexedDocument]:
    """State records and visible chunk counts of these documents (a search, not an mget: the alias
    may cover several index generations)."""
    documents: dict[str, IndexedDocument] = {d: IndexedDocument() for d in document_ids}
    if not document_ids:
        return documents
    ids = list(document_ids)
    states = client.search(
        index=alias,
        size=len(ids),
        query={"bool": {"filter": [{"term": {"kind": "state"}}, {"terms": {"document_id": ids}}]}},
        _source=["document_id", "source", "root", "parts"],
    )
    for hit in states["hits"]["hits"]:
        documents[hit["_source"]["document_id"]].state = hit["_source"]
    counts = client.search(
        index=alias,
        size=0,
        query={
            "bool": {
                "filter": [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}, {"terms": {"document_id": ids}}]
            }
        },
        # One bucket per document (not per part: search.max_buckets would bound a page of long tickets).
        aggs={"docs": {"terms": {"field": "document_id", "size": len(ids)}}},
    )
    for bucket in counts["aggregations"]["docs"]["buckets"]:
        documents[bucket["key"]].visible_chunks = {"*": bucket["doc_count"]}
    return documents


def indexed_document_pages(client: Any, alias: str, source: str, page: int = PAGE) -> Iterator[list[str]]:
    """Every document id of `source` the index holds a state record or a visible chunk for, in pages
    (a composite aggregation: Elasticsearch's way to page through every bucket)."""
    query = {
        "bool": {
            "filter": [{"term": {"source": source}}],
            "should": [
                {"term": {"kind": "state"}},
                {"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}]}},
            ],
            "minimum_should_match": 1,
        }
    }
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": page, "sources": [{"id": {"terms": {"field": "document_id"}}}]}
        if after is not None:
            composite["after"] = after
        response = client.search(index=alias, size=0, query=query, aggs={"docs": {"composite": composite}})
        result = response["aggregations"]["docs"]
        ids = [bucket["key"]["id"] for bucket in result["buckets"]]
        if ids:
            yield ids
        after = result.get("after_key")
        if not ids or after is None:
            return


# -- comparing (pure) ---------------------------------------------------------------------------


def _live_parts(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {pid: p for pid, p in (state.get("parts") or {}).items() if pid != "root" and not p.get("deleted")}


def _content_drift(row: SourceDocument, parts: dict[str, dict[str, Any]]) -> tuple[list[str], int]:
    """The parts whose stored content hash differs from the source row's, and how many could not be
    compared (no hash stored). Parts absent from either side are the structural check's business."""
    differ: list[str] = []
    unverified = 0
    for part_id, expected in sorted(row.hashes.items()):
        held = parts.get(part_id)
        if held is None or held.get("deleted"):
            continue
        stored = held.get("content_hash") or ""
        if not stored:
            unverified += 1
        elif stored != expected:
            differ.append(part_id)
    return differ, unverified


def compare(
    source: str,
    mapping_tables: dict[str, DocumentMapping],
    rows: dict[str, SourceDocument],
    index: dict[str, IndexedDocument],
) -> SourceReport:
    """The drift between one source's rows and the index's documents of that source."""
    report = SourceReport(source, source_documents=len(rows))
    child_tables = {c.table for m in mapping_tables.values() for c in m.children}
    indexed = {d: doc for d, doc in index.items() if d.split("/", 1)[0] == source}
    for document_id in sorted(set(rows) | set(indexed)):
        row = rows.get(document_id)
        doc = indexed.get(document_id, IndexedDocument())
        state = doc.state
        root: dict[str, Any] | None = (state or {}).get("root")
        if root and root.get("suppressed"):
            report.forgotten += 1
            if doc.visible_total:
                report.issues["resurrected"].append(
                    Issue(document_id, f"forgotten, yet {doc.visible_total} chunks visible")
                )
            continue
        root_live = root is not None and not root.get("deleted")
        if root_live:
            report.indexed_documents += 1
        if row is None:
            if root_live or doc.visible_total:
                report.issues["extra"].append(Issue(document_id, f"no source row, {doc.visible_total} chunks visible"))
            continue
        if root and root.get("deleted"):
            if doc.visible_total:
                report.issues["resurrected"].append(
                    Issue(document_id, f"state says deleted, {doc.visible_total} chunks visible")
                )
            report.issues["missing"].append(Issue(document_id, "source row exists, index state says deleted"))
            continue
        if state is None:
            report.issues["missing"].append(Issue(document_id, "no state record in the index"))
            continue
        if not root:
            report.issues["missing"].append(Issue(document_id, "state record has no root row"))
            continue
        parts = state.get("parts") or {}
        expected = sum(len(p.get("chunk_hashes") or []) for p in parts.values() if not p.get("deleted"))
        if doc.visible_total < expected:
            report.issues["missing"].append(
                Issue(document_id, f"state expects {expected} chunks, {doc.visible_total} visible")
            )
            continue
        live = {pid: p for pid, p in _live_parts(state).items() if pid.split("/", 1)[0] in child_tables}
        reasons: list[str] = []
        absent = sorted(row.parts - set(live))
        surplus = sorted(set(live) - row.parts)
        if absent:
            reasons.append(f"not indexed: {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}")
        if surplus:
            reasons.append(f"gone from source: {', '.join(surplus[:5])}{' ...' if len(surplus) > 5 else ''}")
        for part_id, newest in row.latest.items():
            held = (live.get(part_id) or {}).get("order_key")
            if part_id in live and held != newest:
                reasons.append(f"{part_id} {held} indexed, {newest} is the newest")
        differ, unverified = _content_drift(row, parts)
        report.unverified += unverified
        if differ:
            reasons.append(
                f"content differs from the source (a lost update?): {', '.join(differ[:5])}"
                f"{' ...' if len(differ) > 5 else ''}"
            )
        if reasons:
            report.issues["stale"].append(Issue(document_id, "; ".join(reasons)))
    return report


def verify_source(
    settings: Settings, client: Any, mappings: Mappings, source: str, page: int = PAGE
) -> SourceReport:
    """One source against the index, a page at a time (see the module docstring)."""
    from streams.sources.read_rows import SourceRows, typed_key

    mapping = next(m for m in mappings.sources if m.source == source)
    tables = {d.kind: d for d in mapping.documents}
    alias = settings.index_alias
    report = SourceReport(source)
    with SourceRows(settings, source, page) as rows:
        for document in mapping.documents:
            for documents in source_pages(rows, mappings, source, document):
                report.add(compare(source, tables, documents, read_index_page(client, alias, list(documents))))
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


def verify_all(settings: Settings, client: Any, mappings: Mappings) -> list[SourceReport]:
    client.indices.refresh(index=settings.index_alias)
    return [verify_source(settings, client, mappings, mapping.source) for mapping in mappings.sources]


def persisting(first: list[SourceReport], second: list[SourceReport]) -> list[SourceReport]:
    """The second reports, keeping only issues whose document was already off in the first."""
    before = {(r.source, c, i.document_id) for r in first for c in CATEGORIES for i in r.issues[c]}
    for report in second:
        for category in CATEGORIES:
            report.issues[category] = [
                i for i in report.issues[category] if (report.source, category, i.document_id) in before
            ]
    return second


# -- repairing: incremental snapshots of the drifted rows --------------------------------------------


def repair_signals(settings: Settings, mappings: Mappings, report: SourceReport, rows: Any) -> list[dict[str, Any]]:
    """execute-snapshot signals that re-read every row of the report's missing and stale documents:
    the root rows by key, `each` children by parent, `latest` children by their newest key."""
    from streams.sources.read_rows import typed_key
    from streams.sources.snapshot_signal import snapshot_signal
    from streams.topics import source_namespace

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
    from streams.sources.read_rows import SourceRows
    from streams.sources.snapshot_signal import send_snapshot_signals

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


def _print_table(reports: list[SourceReport], limit: int) -> None:
    header = (
        f"{'source':<10}{'rows':>8}{'indexed':>9}{'forgotten':>10}{'unverified':>11}"
        + "".join(f"{c:>13}" for c in CATEGORIES)
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
    ok = all(r.ok for r in reports)
    click.echo("index consistent with the sources" if ok else "index and sources differ")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--recheck",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait before checking again; only drift seen both times is reported (changes in flight settle).",
)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Issues listed per category.")
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

    from streams.agents.runtime import elasticsearch_client
    from streams.sources.connect import SourceUnavailable

    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    settings = get_settings()
    mappings = load_mappings(PROJECT_ROOT / "connectors")
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
        raise click.ClickException(f"Elasticsearch at {settings.elasticsearch_url}: {exc}") from exc
    if as_json:
        click.echo(json.dumps({"ok": all(r.ok for r in reports), "sources": [r.to_json() for r in reports]}, indent=2))
    else:
        _print_table(reports, limit)
    sys.exit(0 if all(r.ok for r in reports) else 1)
