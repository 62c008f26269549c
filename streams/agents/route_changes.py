"""The router: Debezium topics (keyed by row) -> the repartition topic (keyed by document).

Debezium keys a change by its row, so a ticket and its comments arrive on different topics and
partitions, and with several workers two of them could write one document at the same moment. The
router decodes and maps each change (the only place that does) and forwards the result, with the
Debezium record and its origin, to `settings.routed_topic` keyed by the document id: every change to
a document then lands in one partition, which one worker of the group owns (index_changes.py), and
that worker applies the decoded change as it is.

A change to a source's heartbeat table (observability/capture_health.py) is no document: it is sent
to every partition of the repartition topic, so every worker's indexing loop receives each source's
heartbeats and its capture age (`/health`) measures the whole path, the router included, whichever
partitions it owns.

What it cannot route it handles here, where the origin is the Debezium record itself: an event that
does not decode or map becomes a dead letter naming its topic, partition and offset; a skipped event
(a tombstone, an unmapped table) is counted. Its loop (agents/router_consumer.py) commits a batch's
offsets only once the broker has acknowledged all its forwards, so a crash replays the batch (a
duplicate on the repartition topic is harmless: every write is idempotent and ordered by version).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cachetools import LRUCache, TTLCache

from streams import avro
from streams.errors import DecodeError, StreamsError
from streams.observability import metrics
from streams.observability.dead_letters import SendDeadLetter, dead_letter_record
from streams.pipeline.decode_change_event import DEFAULT_MAX_EVENT_BYTES, decode_change_event
from streams.pipeline.document_mapping import Mappings
from streams.records import ChangeEvent, Origin, PartChange, RawMessage, RoutedChange, UnreadableRecord
from streams.settings import HEARTBEAT_TABLE
from streams.sources.read_paths import PartFailure, PathLookup

log = logging.getLogger(__name__)

# (key, value, partition or None for the key's) -> an awaitable that completes once the broker has the record.
Forward = Callable[[bytes, bytes, int | None], Awaitable[Awaitable[object]]]
# A message as the router decoded it: its routed change (None: nothing to index), its event when it is
# read through paths, or the error that makes it a dead letter.
Decoded = RoutedChange | ChangeEvent | StreamsError | None

# A document created this recently, while its source burst, is part of the burst: its parts that come
# after its root row (an import's later rows of the same document) go where the root went.
NEW_DOCUMENT_S = 60.0
NEW_DOCUMENTS_KEPT = 200_000
# How far back in commit time, from a source's newest commit, the burst detector keeps its changes (to
# find bursts among rows read late) and its bursts (to judge rows read later still).
KEEP_CHANGES_S = 600.0
KEEP_BURSTS_S = 3600.0
# Source transactions whose rows the router counts (the newest; an import's are read within seconds).
TRANSACTIONS_KEPT = 20_000


class ChangeDecoder:
    """A Debezium record -> what it means for the index, decoded and mapped once."""

    def __init__(
        self, mappings: Mappings, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, heartbeat_table: str = HEARTBEAT_TABLE
    ) -> None:
        self.mappings = mappings
        self.max_event_bytes = max_event_bytes
        self.heartbeat_table = heartbeat_table

    def decode(self, message: RawMessage) -> RoutedChange | None:
        """None when there is nothing to index (a tombstone, an unmapped table); raises StreamsError."""
        return self.routed(message, self.event(message))

    def event(self, message: RawMessage) -> ChangeEvent | None:
        """The record's change event (None for a tombstone); raises StreamsError."""
        return decode_change_event(
            message.topic,
            message.key,
            message.value,
            message.partition,
            message.offset,
            max_bytes=self.max_event_bytes,
        )

    def routed(self, message: RawMessage, event: ChangeEvent | None) -> RoutedChange | None:
        """What `event` means for the index when the mapping alone says (see `decode`)."""
        if event is None:
            return None
        if event.table == self.heartbeat_table:
            return RoutedChange(message, event.source, event.commit_ts, None)
        change = self.mappings.part_change(event)
        return RoutedChange(message, event.source, event.commit_ts, change) if change is not None else None


def encode_routed(routed: RoutedChange, registry_url: str | None = None) -> bytes:
    message, change = routed.message, routed.change
    decoded = {
        "source": routed.source,
        "commit_ts": routed.commit_ts,
        "part": _part_record(change) if change is not None else None,
    }
    return avro.encode(
        "routed_change",
        {
            "origin_topic": message.topic,
            "origin_partition": message.partition,
            "origin_offset": message.offset,
            "key": message.key,
            "value": message.value,
            "decoded": decoded,
        },
        registry_url,
    )


def _part_record(change: PartChange) -> dict[str, Any]:
    return {
        "table": change.table,
        "document_id": change.document_id,
        "part_id": change.part_id,
        "role": change.role,
        "deleted": change.deleted,
        "version": change.version,
        "text": change.text,
        "text_format": change.text_format,
        "subjects": sorted(change.subjects),
        "order_key": change.order_key,
        "title": change.title,
        "groups": list(change.groups) if change.groups is not None else None,
        "metadata_json": json.dumps(change.metadata, ensure_ascii=False),
        "link": change.link,
        "identity": change.identity,
        "mentions": [{"kind": kind, "value": value} for kind, value in change.mentions],
        "snapshot": change.snapshot,
        "content_hash": change.content_hash,
        "about": change.about,
    }


def _part_change(record: dict[str, Any], source: str, commit_ts: datetime, origin: Origin) -> PartChange:
    groups = record["groups"]
    return PartChange(
        source=source,
        table=record["table"],
        document_id=record["document_id"],
        part_id=record["part_id"],
        role=record["role"],
        deleted=record["deleted"],
        version=record["version"],
        commit_ts=commit_ts,
        text=record["text"],
        text_format=record["text_format"],
        subjects=frozenset(record["subjects"]),
        order_key=record["order_key"],
        title=record["title"],
        groups=tuple(groups) if groups is not None else None,
        metadata=json.loads(record["metadata_json"]),
        link=record["link"],
        identity=record["identity"],
        mentions=tuple((mention["kind"], mention["value"]) for mention in record["mentions"]),
        origin=origin,
        snapshot=record["snapshot"],
        content_hash=record["content_hash"],
        about=record.get("about", False),
    )


def unwrap_routed(
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    decoder: ChangeDecoder,
    registry_url: str | None = None,
) -> RoutedChange | UnreadableRecord | None:
    """The change a routed record carries; None for nothing to index (a tombstone on the topic).

    A record without the decoded change (written by a router that did not decode) is decoded here,
    as the router would have. What cannot be read is an UnreadableRecord: one that is no routed
    change at all (written by something else) names its own origin, one whose Debezium record no
    longer decodes or maps names the Debezium origin."""
    if value is None:
        return None
    try:
        record = avro.decode("routed_change", value, registry_url)
    except DecodeError as exc:
        log.warning("%s[%d]@%d is not a routed change: %s", topic, partition, offset, exc)
        return UnreadableRecord(RawMessage(topic, partition, offset, None, value), exc)
    message = RawMessage(
        record["origin_topic"], record["origin_partition"], record["origin_offset"], record["key"], record["value"]
    )
    decoded = record.get("decoded")
    if decoded is None:
        try:
            return decoder.decode(message)
        except StreamsError as exc:
            return UnreadableRecord(message, exc)
    part = decoded["part"]
    try:
        change = _part_change(part, decoded["source"], decoded["commit_ts"], message.origin) if part else None
    except ValueError as exc:  # metadata that is not JSON: written by something other than the router
        return UnreadableRecord(message, DecodeError(f"routed change carries bad metadata: {exc}"))
    return RoutedChange(message, decoded["source"], decoded["commit_ts"], change)


def source_of(topic: str) -> str:
    """A Debezium topic's source: `<topic.prefix>.<database or schema>.<table>` without its last two
    parts (a prefix may hold dots itself)."""
    parts = topic.rsplit(".", 2)
    return parts[0] if len(parts) == 3 else topic


class BurstDetector:
    """When a source burst: at least `events` changes, or `size` bytes of change events, committed at
    the source within `window_s` seconds of each other. Counted per source, all its tables together: a
    bulk import arrives as thousands of changes committed within a second or two, spread over a page's,
    revision's and text's tables, or a ticket's and its comments'; a person's edits come a few at a
    time. The bytes catch an import of large documents that creates them one at a time (a wiki's pages,
    each tens of chunks): few changes a second, but far more text than the model embeds in that time.

    Each change is judged by its own commit time, not by the moment the router reads it, nor by the
    newest commit the router has seen: a router that has fallen behind reads an import in batches
    seconds apart, and a topic of large rows (a wiki's revisions) lags behind the others, so an
    import's rows can be read after a person's edit committed minutes later. `count` notes changes,
    `at` says whether a commit time lies in one of the source's bursts (or within `hold_s` after
    one). Which of a bursting source's changes are bulk work is the router's to say (see
    `ChangeRouter._forward_change`)."""

    def __init__(self, events: int, window_s: float = 1.0, size: int = 0, hold_s: float = 0.0) -> None:
        self.events = events
        self.size = size  # bytes; 0: not counted
        self.window_s = window_s
        # A source that burst stays bursting for `hold_s` of commit time after the burst: an import
        # commits in transactions (a thousand rows each, for the seed) with pauses between them, and
        # the router reads the first rows of the next one before the rest. Without the hold the source
        # stops bursting at every pause, and the documents created then go live.
        self.hold_s = hold_s
        self._changes: dict[str, list[tuple[float, int]]] = {}  # source -> (commit time, bytes), sorted
        self._bursts: dict[str, list[tuple[float, float]]] = {}  # source -> disjoint (first, last) commit times
        self._newest: dict[str, float] = {}  # source -> latest commit time seen

    def count(self, changes: Iterable[tuple[str, float, int]]) -> None:
        """Note `changes` (source, commit time in epoch seconds, bytes of the event), and the bursts
        they complete. A burst is found around each new commit time: the `window_s` before it and the
        `window_s` after it (rows read out of commit order)."""
        if self.events <= 0:
            return
        new: dict[str, set[float]] = {}
        for source, committed, size in changes:
            bisect.insort(self._changes.setdefault(source, []), (committed, size))
            self._newest[source] = max(committed, self._newest.get(source, committed))
            new.setdefault(source, set()).add(committed)
        for source, times in new.items():
            for committed in sorted(times):  # a transaction's rows share one commit time: judged once
                for first, last in ((committed - self.window_s, committed), (committed, committed + self.window_s)):
                    window = self._window(source, first, last)
                    if self._is_burst(window):
                        self._mark(source, window[0][0], window[-1][0])
            self._forget_old(source)

    def at(self, source: str, committed: float) -> bool:
        """Whether a change of `source` committed at `committed` belongs to one of its bursts."""
        bursts = self._bursts.get(source)
        if not bursts:
            return False
        before = bisect.bisect_right(bursts, (committed, math.inf)) - 1  # the last burst begun by then
        return before >= 0 and committed <= bursts[before][1] + self.hold_s

    def uncount(self, source: str, changes: Iterable[tuple[float, int]]) -> None:
        """Take back `changes` (commit time, bytes) counted before, and find the source's bursts again
        among the changes left (exactly: every window that begins at one of them)."""
        kept = self._changes.get(source)
        if not kept:
            return
        for change in changes:
            at = bisect.bisect_left(kept, change)
            if at < len(kept) and kept[at] == change:
                del kept[at]
        bursts: list[tuple[float, float]] = []
        end, size = -1, 0  # the window kept[begin : end + 1] and its bytes, moved along in one pass
        for begin, (first, _) in enumerate(kept):
            if end < begin:
                end, size = begin, kept[begin][1]
            while end + 1 < len(kept) and kept[end + 1][0] <= first + self.window_s:
                end += 1
                size += kept[end][1]
            if end - begin + 1 >= self.events or 0 < self.size <= size:
                last = kept[end][0]
                if bursts and bursts[-1][1] >= first:
                    bursts[-1] = (bursts[-1][0], max(bursts[-1][1], last))
                else:
                    bursts.append((first, last))
            size -= kept[begin][1]
        self._bursts[source] = bursts

    def _window(self, source: str, first: float, last: float) -> list[tuple[float, int]]:
        changes = self._changes[source]
        return changes[bisect.bisect_left(changes, (first, -1)) : bisect.bisect_right(changes, (last, math.inf))]

    def _is_burst(self, window: list[tuple[float, int]]) -> bool:
        return len(window) >= self.events or 0 < self.size <= sum(size for _, size in window)

    def _mark(self, source: str, first: float, last: float) -> None:
        """The burst (first, last) merged into the source's bursts it overlaps."""
        bursts = self._bursts.setdefault(source, [])
        kept = [burst for burst in bursts if burst[1] < first or burst[0] > last]
        for begun, ended in bursts:
            if not (ended < first or begun > last):
                first, last = min(first, begun), max(last, ended)
        bisect.insort(kept, (first, last))
        self._bursts[source] = kept

    def _forget_old(self, source: str) -> None:
        """Changes committed over KEEP_CHANGES_S, and bursts over KEEP_BURSTS_S, before the newest."""
        newest = self._newest[source]
        changes = self._changes[source]
        del changes[: bisect.bisect_left(changes, (newest - KEEP_CHANGES_S, -1))]
        self._bursts[source] = [burst for burst in self._bursts.get(source, []) if burst[1] >= newest - KEEP_BURSTS_S]


class ChangeRouter:
    def __init__(
        self,
        mappings: Mappings,
        forward: Forward,
        send_dead_letter: SendDeadLetter,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        registry_url: str | None = None,
        heartbeat_table: str = HEARTBEAT_TABLE,
        partitions: int = 1,
        paths: PathLookup | None = None,
        forward_backfill: Forward | None = None,
        burst_events: int = 0,
        burst_window_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        burst_bytes: int = 0,
        burst_hold_s: float = 0.0,
    ) -> None:
        self.decoder = ChangeDecoder(mappings, max_event_bytes, heartbeat_table)
        # Reads for the documents mapped through joins: their events are triggers (read_paths.py).
        self.paths = paths
        self.forward = forward
        self.send_dead_letter = send_dead_letter
        self.registry_url = registry_url
        self.partitions = partitions  # of the repartition topic: a heartbeat goes to each
        # The backfill lane (None: one lane for all): snapshot reads, and the changes of a source that
        # bursts (at least `burst_events` changes, or `burst_bytes` bytes of them, of its tables routed
        # within `burst_window_s`; 0: no burst is bulk) go there, so live work never waits behind them
        # (agents/lanes.py).
        self.forward_backfill = forward_backfill
        self.burst = BurstDetector(burst_events, burst_window_s, size=burst_bytes, hold_s=burst_hold_s)
        # Within a burst, what goes to the backfill lane: the documents it creates (their root row
        # inserted while the source burst, within the last NEW_DOCUMENT_S) with the rows inserted into
        # them after it, and everything when the changes to the other documents burst by themselves (a
        # bulk update). A person's edit of an existing document during an import of new ones stays
        # live. `created` holds each document whose root row was inserted within NEW_DOCUMENT_S: True
        # when its source was bursting then. A bulk update has no hold: a person's edit after it must
        # not wait behind it.
        self.update_burst = BurstDetector(burst_events, burst_window_s, size=burst_bytes)
        # A document is the burst's when its root row came in a large transaction (at least
        # `burst_events` rows: an import's COPY batch, a migration), or when the small transactions of
        # its source burst by themselves (an import through an application's API, a transaction per
        # document). A person's new document, in a transaction of its own during an import that
        # commits in large ones, stays live.
        self.small_burst = BurstDetector(burst_events, burst_window_s, size=burst_bytes, hold_s=burst_hold_s)
        # Rows seen per (source, transaction), for the newest transactions (an import's are read within
        # seconds of each other).
        self.transaction_rows: LRUCache[tuple[str, str], int] = LRUCache(maxsize=TRANSACTIONS_KEPT)
        # The changes of each transaction counted as a small one's so far: the router may read the first
        # rows of a large transaction at the end of a batch, and takes them back from `small_burst` once
        # the transaction has grown large (else an import's transactions, each cut at a batch's end,
        # would make its small transactions seem to burst, and a person's new document go to backfill).
        self.counted_small: LRUCache[tuple[str, str], list[tuple[float, int]]] = LRUCache(maxsize=TRANSACTIONS_KEPT)
        # When the source's small transactions create documents (root rows inserted): a row inserted into
        # a document not seen created yet, committed while they burst and create, is taken for the
        # import's (a wiki's revision read before its page, which comes on another topic).
        self.small_creations = BurstDetector(1, burst_window_s, hold_s=burst_window_s)
        # The places (Debezium's total_order) of each small transaction's events seen so far.
        self.transaction_orders: LRUCache[tuple[str, str], set[int]] = LRUCache(maxsize=TRANSACTIONS_KEPT)
        self.created: TTLCache[str, bool] = TTLCache(maxsize=NEW_DOCUMENTS_KEPT, ttl=NEW_DOCUMENT_S, timer=clock)
        # The documents whose rows were inserted by a live forward, with the source transaction they came
        # in: a large transaction's first rows are forwarded live before it is known to be large, and the
        # live lane asks `now_bulk` before it embeds them.
        self.live_inserts: TTLCache[str, tuple[str, str]] = TTLCache(
            maxsize=NEW_DOCUMENTS_KEPT, ttl=NEW_DOCUMENT_S, timer=clock
        )
        self._bulk: tuple[set[str], set[str]] = (set(), set())  # as last logged: bursting, bursting by updates

    def _decode_all(
        self, messages: Sequence[RawMessage]
    ) -> tuple[list[tuple[RawMessage, Decoded]], set[int], dict[int, str], dict[int, int]]:
        """Each message decoded and mapped (or the error that stops it), which messages (by position)
        insert a row, the source transaction of each change (its commit instant where the event names
        none), and each change's place in its transaction where the event says."""
        decoded: list[tuple[RawMessage, Decoded]] = []
        inserts: set[int] = set()
        transactions: dict[int, str] = {}
        orders: dict[int, int] = {}
        for position, message in enumerate(messages):
            try:
                event = self.decoder.event(message)
                if event is not None:
                    transactions[position] = event.transaction or f"at {event.commit_ts.isoformat()}"
                    if event.transaction_order is not None:
                        orders[position] = event.transaction_order
                if event is not None and event.op == "c":
                    inserts.add(position)
                if event is not None and self.paths is not None and self.paths.handles(event):
                    decoded.append((message, event))  # read through its paths when routed
                    continue
                routed = self.decoder.routed(message, event)
            except StreamsError as exc:
                decoded.append((message, exc))
                continue
            decoded.append((message, routed))
        return decoded, inserts, transactions, orders

    def judge_bursts(
        self,
        decoded: Sequence[tuple[RawMessage, Decoded]],
        inserts: set[int],
        transactions: Mapping[int, str],
        orders: Mapping[int, int],
    ) -> tuple[set[int], set[int]]:
        """Count the batch's changes into the burst detectors: all of them into `burst` (all of a
        source's tables together), those of small transactions into `small_burst`, and its updates and
        deletes of rows of documents not just created into `update_burst` (a bulk update). Each
        document whose root row the batch inserts is noted in `created`, as the burst's when the row
        came in a large transaction, or when its commit time lies in a burst of its source's small
        transactions. The positions of the changes that came in large transactions, and of those read
        ahead of an earlier event of their (small) transaction, which may be their document's root row
        on another topic.

        An inserted row never counts as an update: an import's child rows may be read before their
        document's root row (they come on other topics), and a person's edit of an existing document
        during an import must not make the whole source bulk work."""
        # (source, commit time, bytes) of each change; not a skipped row or a dead letter, which have no
        # commit time and are no work for the index.
        counted: list[tuple[int, tuple[str, float, int], RoutedChange | ChangeEvent]] = [
            (position, (source_of(message.topic), outcome.commit_ts.timestamp(), len(message.value or b"")), outcome)
            for position, (message, outcome) in enumerate(decoded)
            if isinstance(outcome, (RoutedChange, ChangeEvent))
        ]
        for position, (source, _, _), _ in counted:
            key = (source, transactions.get(position, ""))
            rows = self.transaction_rows[key] = self.transaction_rows.get(key, 0) + 1
            if position in orders and rows <= self.burst.events:  # the places of a small one's events
                self.transaction_orders.setdefault(key, set()).add(orders[position])
        # Large by its rows alone: one row can be large (a person's edit of a long wiki page).
        large = {
            position
            for position, (source, _, _), _ in counted
            if 0 < self.burst.events <= self.transaction_rows.get((source, transactions.get(position, "")), 0)
        }

        self.burst.count(change for _, change, _ in counted)
        small = []
        for position, change, _ in counted:
            source, committed, size = change
            key = (source, transactions.get(position, ""))
            if position in large:
                if earlier := self.counted_small.pop(key, None):  # grown large: its first rows were not small
                    self.small_burst.uncount(source, earlier)
            else:
                small.append(change)
                self.counted_small.setdefault(key, []).append((committed, size))
        self.small_burst.count(small)
        roots = []
        for position, (source, committed, size), outcome in counted:
            part = outcome.change if isinstance(outcome, RoutedChange) else None
            if position in inserts and part is not None and part.role == "root":
                self.created[part.document_id] = position in large or self.small_burst.at(source, committed)
                if position not in large:
                    roots.append((source, committed, size))
        self.small_creations.count(roots)
        updates = []
        for position, change, outcome in counted:
            part = outcome.change if isinstance(outcome, RoutedChange) else None
            # An update or delete in an existing document, or of a row read through paths (whose
            # documents are known only once read); not a heartbeat.
            existing = isinstance(outcome, ChangeEvent) or (part is not None and part.document_id not in self.created)
            if position not in inserts and existing:
                updates.append(change)
        self.update_burst.count(updates)
        self._log_bursts(counted)
        ahead = set()
        for position, (source, _, _), _ in counted:
            seen = self.transaction_orders.get((source, transactions.get(position, "")), set())
            if position not in large and position in orders and len(seen) < orders[position]:
                if any(order not in seen for order in range(1, orders[position])):
                    ahead.add(position)
        return large, ahead

    def _log_bursts(self, counted: Sequence[tuple[int, tuple[str, float, int], object]]) -> None:
        """A line when a source starts or stops bursting, judged by the newest commit of the batch's
        changes of it, so that an operator sees why its changes went to the backfill lane (a source
        this batch did not see keeps its state)."""
        newest: dict[str, float] = {}
        for _, (source, committed, _), _ in counted:
            newest[source] = max(committed, newest.get(source, committed))
        bursting = {source for source, committed in newest.items() if self.burst.at(source, committed)}
        updating = {source for source, committed in newest.items() if self.update_burst.at(source, committed)}
        seen = set(newest)
        was_bursting, was_updating = self._bulk
        for source in sorted(bursting - was_bursting):
            log.info("%s is bursting: the documents it creates now go to the backfill lane", source)
        for source in sorted(updating - was_updating):
            log.info("%s is bursting with updates of existing documents: all its changes go to backfill", source)
        for source in sorted((was_bursting | was_updating) & seen - bursting - updating):
            log.info("%s no longer bursts: its changes are live work again", source)
        self._bulk = ((was_bursting - seen) | bursting, (was_updating - seen) | updating)

    def _forward_change(
        self,
        change: PartChange,
        message: RawMessage,
        committed: datetime,
        *,
        inserted: bool = False,
        large_transaction: bool = False,
        ahead: bool = False,
    ) -> Forward:
        """The lane of one change, judged by its own commit time: a snapshot read, a change that came in
        a large source transaction (an import's or a migration's batch, whichever document it is of: an
        import's revisions or comments may be read before their documents), a change committed during a
        bulk update of its source, or a change to a document the burst created goes to the backfill
        lane. A row inserted into a document the burst created goes where its root went, even
        when it was committed after the burst: an import's revisions or comments come on other topics,
        often well after their documents' root rows (a topic of large rows is read a few at a time),
        and each is most of its document's text."""
        if self.forward_backfill is None:
            return self.forward
        source, at = source_of(message.topic), committed.timestamp()
        created = self.created.get(change.document_id)
        if (
            created is None
            and inserted
            and ahead
            and self.small_burst.at(source, at)
            and self.small_creations.at(source, at)
        ):
            # Read ahead of an earlier row of its transaction, maybe its document's root, while its source's
            # small transactions burst and create documents: the import's (its root, read later, says).
            return self.forward_backfill
        if created is False and inserted and self.small_burst.at(source, at):
            # A burst recognised only once the document's other rows came (a wiki's page rows are read
            # ahead of their revisions, which carry the bytes): its rows from now on are the burst's.
            self.created[change.document_id] = created = True
        of_the_burst = bool(created) and (inserted or self.burst.at(source, at))
        if change.snapshot or large_transaction or self.update_burst.at(source, at) or of_the_burst:
            return self.forward_backfill
        return self.forward

    async def route(self, messages: Sequence[RawMessage]) -> None:
        """Route `messages` and wait until the broker has every record they were forwarded as."""
        await (await self.dispatch(messages))

    async def dispatch(self, messages: Sequence[RawMessage]) -> Awaitable[object]:
        """Route `messages` (their dead letters written, their forwards sent in order) and return an
        awaitable that completes once the broker has acknowledged every forward, or raises the first
        delivery error: the router's loop routes the next batch meanwhile, and commits these
        messages' offsets only once it completes (agents/router_consumer.py)."""
        pending: list[Awaitable[object]] = []
        decoded, inserts, transactions, orders = self._decode_all(messages)
        large, ahead = self.judge_bursts(decoded, inserts, transactions, orders)
        for position, (message, outcome) in enumerate(decoded):
            if isinstance(outcome, StreamsError):
                await self._dead_letter(message, outcome)
                continue
            if isinstance(outcome, ChangeEvent):
                try:
                    pending.extend(await self._read_through_paths(message, outcome, position in large))
                except StreamsError as exc:
                    await self._dead_letter(message, exc)
                continue
            routed = outcome
            if routed is None:
                metrics.EVENTS.labels(source=message.topic.split(".")[0], outcome="skipped").inc()
                continue
            value = encode_routed(routed, self.registry_url)
            if routed.change is None:  # a heartbeat
                key = f"heartbeat:{routed.source}".encode()
                for partition in range(self.partitions):
                    pending.append(await self.forward(key, value, partition))
                continue
            # Sent in order, awaited together: the producer keeps a partition's records in send order.
            forward = self._forward_change(
                routed.change,
                message,
                routed.commit_ts,
                inserted=position in inserts,
                large_transaction=position in large,
                ahead=position in ahead,
            )
            if forward is self.forward and position in inserts and self.forward_backfill is not None:
                self.live_inserts[routed.change.document_id] = (
                    source_of(message.topic),
                    transactions.get(position, ""),
                )
            pending.append(await forward(routed.change.document_id.encode(), value, None))
        return asyncio.gather(*pending)

    def now_bulk(self, document_id: str) -> bool:
        """Whether a document a live forward inserted rows into came in a source transaction that has
        since proved large (an import's, read at the end of a batch before its other rows): its
        changes are bulk work, and the document is the burst's from now on. Only what this router
        forwarded: with several workers, another worker's live lane may hold such a document."""
        inserted = self.live_inserts.get(document_id)
        if inserted is None or self.burst.events <= 0:
            return False
        if self.transaction_rows.get(inserted, 0) < self.burst.events:
            return False
        self.created[document_id] = True
        return True

    async def _dead_letter(self, message: RawMessage, exc: StreamsError) -> None:
        log.warning("dead letter: %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc)
        await self.send_dead_letter(message.origin, dead_letter_record(message.origin, message.key, message.value, exc))

    async def _read_through_paths(
        self, message: RawMessage, event: ChangeEvent, large_transaction: bool = False
    ) -> list[Awaitable[object]]:
        """A trigger: the parts it affects, read from the source, each forwarded as a routed change; a
        part that cannot be read is a dead letter of its own, and the others go on."""
        assert self.paths is not None
        pending: list[Awaitable[object]] = []
        outcomes = await self.paths.read(event)
        if not outcomes:
            metrics.EVENTS.labels(source=event.source, outcome="skipped").inc()
        for outcome in outcomes:
            if isinstance(outcome, PartFailure):
                await self._dead_letter(message, outcome.error)
                continue
            routed = RoutedChange(message, event.source, event.commit_ts, outcome)
            value = encode_routed(routed, self.registry_url)
            forward = self._forward_change(outcome, message, event.commit_ts, large_transaction=large_transaction)
            pending.append(await forward(outcome.document_id.encode(), value, None))
        return pending
