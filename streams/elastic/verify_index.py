"""What `streams verify` does on the index side: read the index, and compare it with the sources' rows.

The rows come from `streams.sources.read_documents` (keys only; for child tables their keys and
parents), passed in by the command (`streams/verify.py`); this module never talks to a source
database. Per source, four kinds of drift are reported:

- missing: the root row exists but the index does not have it as a visible document (no state
  record, or a state whose root is absent or deleted), or the state expects chunks that are not in
  the index (chunks lost behind the worker's back). A row whose text is empty has no chunks and is
  not missing: the state record is what counts.
- stale: the document's child parts in the index differ from the child rows in the source (a
  comment added or deleted but not applied; for `latest` children such as the wiki's revisions, the
  index holds another revision than the newest one).
- extra: visible documents in the index whose root row no longer exists in the source.
- resurrected: visible chunks of a document whose state says its root was deleted.

Documents whose root was suppressed by a deletion request are counted as `forgotten`, not as drift.
The comparison is a snapshot of a moving system: changes in flight show as drift until applied, so
`--recheck S` reports only what is still off S seconds later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.pipeline.document_mapping import DocumentMapping, Mappings
from streams.records import SourceDocument

CATEGORIES = ("missing", "stale", "extra", "resurrected")
PAGE = 5000


# -- snapshots ----------------------------------------------------------------------------------


@dataclass
class IndexedDocument:
    """What the index holds for one document: its state record (if any) and its visible chunks per part."""

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
    issues: dict[str, list[Issue]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})

    @property
    def ok(self) -> bool:
        return not any(self.issues.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_documents": self.source_documents,
            "indexed_documents": self.indexed_documents,
            "forgotten": self.forgotten,
            **{c: [i.to_json() for i in self.issues[c]] for c in CATEGORIES},
            "ok": self.ok,
        }


# -- reading the index --------------------------------------------------------------------------


def _scan(
    client: Any, alias: str, query: dict[str, Any], sort: list[str], fields: list[str]
) -> Iterator[dict[str, Any]]:
    """Every hit of `query`, paged with search_after over a unique sort (no scroll state to leak)."""
    after: list[Any] | None = None
    while True:
        kwargs: dict[str, Any] = {"index": alias, "size": PAGE, "query": query, "sort": sort, "_source": fields}
        if after is not None:
            kwargs["search_after"] = after
        hits = client.search(**kwargs)["hits"]["hits"]
        yield from hits
        if len(hits) < PAGE:
            return
        after = hits[-1]["sort"]


def read_index(client: Any, alias: str) -> dict[str, IndexedDocument]:
    documents: dict[str, IndexedDocument] = defaultdict(IndexedDocument)
    client.indices.refresh(index=alias)
    state_query = {"term": {"kind": "state"}}
    for hit in _scan(client, alias, state_query, ["document_id"], ["document_id", "source", "root", "parts"]):
        documents[hit["_source"]["document_id"]].state = hit["_source"]
    chunk_query = {"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}]}}
    sort = ["document_id", "part_id", "chunk_number"]
    for hit in _scan(client, alias, chunk_query, sort, ["document_id", "part_id"]):
        doc = documents[hit["_source"]["document_id"]]
        part = hit["_source"]["part_id"]
        doc.visible_chunks[part] = doc.visible_chunks.get(part, 0) + 1
    return dict(documents)


# -- comparing (pure) ---------------------------------------------------------------------------


def _live_parts(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {pid: p for pid, p in (state.get("parts") or {}).items() if pid != "root" and not p.get("deleted")}


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
        if reasons:
            report.issues["stale"].append(Issue(document_id, "; ".join(reasons)))
    return report


def compare_all(
    mappings: Mappings, rows: Mapping[str, dict[str, SourceDocument]], index: dict[str, IndexedDocument]
) -> list[SourceReport]:
    """One report per mapped source; `rows` holds each source's documents, keyed by source name."""
    reports: list[SourceReport] = []
    for mapping in mappings.sources:
        tables = {d.kind: d for d in mapping.documents}
        reports.append(compare(mapping.source, tables, rows[mapping.source], index))
    return reports


def persisting(first: list[SourceReport], second: list[SourceReport]) -> list[SourceReport]:
    """The second reports, keeping only issues whose document was already off in the first."""
    before = {(r.source, c, i.document_id) for r in first for c in CATEGORIES for i in r.issues[c]}
    for report in second:
        for category in CATEGORIES:
            report.issues[category] = [
                i for i in report.issues[category] if (report.source, category, i.document_id) in before
            ]
    return second
