"""Load a BEIR collection into a source database so that its documents travel the real path
(Debezium, Kafka, the worker, Elasticsearch), wait until every one is searchable, and remember which
index document each collection document became (`loaded-<group>.json` beside the set).

Into the example sources, only the tickets source is supported (the real applications:
streams/eval/load_applications.py): a collection document becomes a ticket whose subject is the
title, whose description is the text, whose product is 'eval' (so the bench's edits leave it alone) and
whose only access group is the chosen group, so that an eval restricted to that group sees the
collection and nothing else.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from streams.elastic.hybrid_index import chunk_filter
from streams.eval.golden_set import CorpusDocument, GoldenSetError
from streams.sources.batches import batches
from streams.sources.people import STAFF_TEAMS

log = logging.getLogger(__name__)

SOURCES = ("tickets",)
BATCH_ROWS = 500
_TICKET_KIND = "tickets/ticket/"  # document ids of tickets: connectors/tickets.mapping.yaml


@dataclass(frozen=True)
class LoadedCollection:
    """Which index document each collection document became; written beside the set."""

    group: str
    source: str
    documents: dict[str, str]  # corpus id -> index document id
    # The index access groups the documents are in, when not the group itself (the applications' own:
    # `mediawiki-group:<group>`, `queue:<group>`); an eval searches as these.
    access_groups: tuple[str, ...] = ()

    @property
    def search_groups(self) -> list[str]:
        return list(self.access_groups) or [self.group]

    @staticmethod
    def path(directory: Path, group: str) -> Path:
        return directory / f"loaded-{group}.json"

    def save(self, directory: Path) -> Path:
        path = self.path(directory, self.group)
        tmp = path.with_suffix(".tmp")
        row: dict[str, Any] = {"group": self.group, "source": self.source, "documents": self.documents}
        if self.access_groups:
            row["access_groups"] = list(self.access_groups)
        tmp.write_text(json.dumps(row, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, directory: Path, group: str | None = None) -> LoadedCollection:
        """The load record for `group`, or the only one beside the set when no group is named."""
        if group is None:
            found = sorted(directory.glob("loaded-*.json"))
            if len(found) != 1:
                raise GoldenSetError(
                    f"{directory}: {len(found)} loaded collections ({', '.join(p.name for p in found) or 'none'}); "
                    "load it first with `streams eval load DIR --group NAME`, or name the group with --group"
                )
            path = found[0]
        else:
            path = cls.path(directory, group)
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
            return cls(row["group"], row["source"], dict(row["documents"]), tuple(row.get("access_groups") or ()))
        except (OSError, ValueError, KeyError) as exc:
            raise GoldenSetError(f"cannot read {path}: {exc}; load the set with `streams eval load`") from exc

    def corpus_ids(self) -> dict[str, str]:
        """index document id -> corpus id, to map search results back."""
        return {document: corpus for corpus, document in self.documents.items()}


@dataclass(frozen=True)
class LoadResult:
    loaded: LoadedCollection
    inserted: int
    already_loaded: bool
    seconds: float  # first commit -> every document searchable
    chunks: int

    @property
    def documents_per_s(self) -> float:
        return self.inserted / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.loaded.group,
            "source": self.loaded.source,
            "documents": len(self.loaded.documents),
            "inserted": self.inserted,
            "already_loaded": self.already_loaded,
            "seconds": round(self.seconds, 2),
            "chunks": self.chunks,
            "documents_per_s": round(self.documents_per_s, 1),
            "chunks_per_s": round(self.chunks / self.seconds, 1) if self.seconds > 0 and self.inserted else 0.0,
        }


def check_group(group: str) -> None:
    if group in STAFF_TEAMS:
        raise GoldenSetError(
            f"group {group!r} is a seeded staff group: a collection must get a group of its own, "
            "or its documents would mix with the seeded ones (and --replace would delete those)"
        )
    if not group or not all(c.isalnum() or c in "-_." for c in group):
        raise GoldenSetError(f"group {group!r}: use letters, digits, '-', '_' or '.'")


def existing_load(conn: Any, directory: Path, group: str, corpus: list[CorpusDocument]) -> LoadedCollection | None:
    """The earlier load of this collection into this group, if the database still holds exactly it."""
    try:
        loaded = LoadedCollection.read(directory, group)
    except GoldenSetError:
        return None
    if set(loaded.documents) != {d.doc_id for d in corpus}:
        return None
    # Unchanged means same subject and text and no comment added since (the bench's edits, for one).
    rows = conn.execute(
        "SELECT t.id, t.subject, t.description, count(c.id) FROM tickets t"
        " LEFT JOIN ticket_comments c ON c.ticket_id = t.id"
        " WHERE t.access_groups = ARRAY[%s]::text[] GROUP BY t.id",
        (group,),
    ).fetchall()
    in_db = {f"{_TICKET_KIND}{row[0]}": (row[1], row[2], row[3]) for row in rows}
    documents = {d.doc_id: d for d in corpus}
    if len(in_db) != len(loaded.documents):
        return None
    for corpus_id, document_id in loaded.documents.items():
        doc = documents[corpus_id]
        if in_db.get(document_id) != (_subject(doc.title, corpus_id), doc.text, 0):
            return None
    return loaded


def _subject(title: str, corpus_id: str) -> str:
    return title.strip() or f"Document {corpus_id}"  # a ticket needs a subject; BEIR titles may be empty


def delete_group(conn: Any, group: str) -> int:
    """Delete the tickets of an earlier load (the deletes travel the pipeline like any other)."""
    count = conn.execute("DELETE FROM tickets WHERE access_groups = ARRAY[%s]::text[]", (group,)).rowcount
    conn.commit()
    return int(count)


def insert_tickets(
    conn: Any, corpus: list[CorpusDocument], group: str, advance: Callable[[int], None]
) -> dict[str, str]:
    """COPY the documents in as tickets, a batch per commit; corpus id -> index document id."""
    from streams.sources.write_postgres import reserve_ids

    documents: dict[str, str] = {}
    for batch in batches(corpus, BATCH_ROWS):
        ids = reserve_ids(conn, "tickets", len(batch))
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY tickets (id, subject, description, status, priority, product, access_groups) FROM STDIN"
            ) as copy,
        ):
            for ticket_id, doc in zip(ids, batch, strict=True):
                copy.write_row(
                    (ticket_id, _subject(doc.title, doc.doc_id), doc.text, "closed", "normal", "eval", [group])
                )
                documents[doc.doc_id] = f"{_TICKET_KIND}{ticket_id}"
        conn.commit()
        advance(len(batch))
    return documents


def indexed_count(es: Elasticsearch, alias: str, groups: list[str], document_ids: list[str]) -> tuple[int, int]:
    """(documents with at least one searchable chunk, their chunks) among `document_ids`; none yet while
    the index does not exist (a worker that has just started creates it with its first batch)."""
    try:
        es.indices.refresh(index=alias)
    except NotFoundError:
        return 0, 0
    response = es.search(
        index=alias,
        size=0,
        track_total_hits=True,
        query={"bool": {"filter": [*chunk_filter(None, groups), {"terms": {"document_id": document_ids}}]}},
        aggs={"documents": {"cardinality": {"field": "document_id", "precision_threshold": 40000}}},
    )
    return int(response["aggregations"]["documents"]["value"]), int(response["hits"]["total"]["value"])


def wait_until_indexed(
    es: Elasticsearch,
    alias: str,
    groups: list[str],
    document_ids: list[str],
    progress: Callable[[int, int, int], None],
    stall_s: float = 600.0,
    poll_s: float = 2.0,
    *,
    gone: bool = False,
) -> tuple[float, int]:
    """Poll until every document is searchable by `groups` (with `gone`, until none is); (seconds waited,
    chunks). Raises when the count has not moved for `stall_s` (the worker is not running, or some
    documents cannot be indexed).

    The count moves by whole batches: a batch of up to STREAMS_BATCH_MAX_EVENTS long documents becomes
    searchable only once all its chunks are embedded and written. A CI run saw one batch of 256 golden-set
    documents carry 5,193 chunks, about three minutes of embedding on two busy cores with nothing
    searchable meanwhile; 180 s called that a stall. Ten minutes without a batch is one."""
    started = last_move = time.monotonic()
    last = -1
    while True:
        done, chunks = indexed_count(es, alias, groups, document_ids)
        now = time.monotonic()
        progress(done, len(document_ids), chunks)
        if (done == 0) if gone else (done >= len(document_ids)):
            return now - started, chunks
        if done != last:
            last, last_move = done, now
        elif now - last_move > stall_s:
            raise GoldenSetError(
                f"{done} of {len(document_ids)} documents {'still ' if gone else ''}searchable and no progress for "
                f"{stall_s:.0f} s: is `streams worker` running and are the connectors registered "
                "(`streams connectors register`)?"
            )
        time.sleep(poll_s)
