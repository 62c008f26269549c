"""Comparing the sources with the index, content included (the `streams verify` command is streams/verify.py).

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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.errors import StreamsError
from streams.pipeline.document_mapping import DocumentMapping, Mappings
from streams.records import ChangeEvent, Op

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
    # A path part's id is its name, or for an `each` part <leaf table>/<key>.
    child_tables |= {p.leaf.table if p.mode == "each" else p.name for m in mapping_tables.values() for p in m.parts}
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
                report.issues["extra"].append(
                    Issue(document_id, f"no source row (or the row is no document), {doc.visible_total} chunks visible")
                )
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


def persisting(first: list[SourceReport], second: list[SourceReport]) -> list[SourceReport]:
    """The second reports, keeping only issues whose document was already off in the first."""
    before = {(r.source, c, i.document_id) for r in first for c in CATEGORIES for i in r.issues[c]}
    for report in second:
        for category in CATEGORIES:
            report.issues[category] = [
                i for i in report.issues[category] if (report.source, category, i.document_id) in before
            ]
    return second
