"""Turn one Kafka record from a Debezium connector into a ChangeEvent, or into None on purpose.

Decoding is explicit and from bytes, so that every way an event can be wrong becomes a DecodeError
(data for the dead-letter topic) instead of a crash deep inside a worker.

Every connector writes with Kafka Connect's JsonConverter, and both of its shapes end up as the same
envelope dict:
- ``schemas.enable=true``: ``{"schema": ..., "payload": <envelope>}``;
- ``schemas.enable=false``: the bare envelope.

Hostile input is refused here, before anything is built from it: a value over ``max_bytes`` (a
size guard: a 10 MB row image is an accident or an attack, and would stall a batch), bytes that are
not UTF-8, text holding lone surrogates (JSON escapes that are not Unicode: Elasticsearch and the
model would choke on them later), and an event whose table is not the one its topic carries
(Debezium writes one table per topic, ``<prefix>.<schema>.<table>``; anything else was produced by
something other than the connector, and no mapping should guess what it means).

Deliberately skipped (None): tombstones (a delete is already carried by the ``op=d`` event before
it), heartbeats and transaction metadata. Those carry no row state.

The version is what makes "newest wins" work, so it is validated rather than trusted:
- PostgreSQL: ``source.lsn``. Row locks serialize writes to one row, so per row the LSN only grows,
  and a snapshot read carries the snapshot's LSN, below every change streamed after it.
- MariaDB/MySQL: ``(file_seq << 44) | (pos << 8) | row``. ``pos`` is the binlog position of the rows
  event and ``row`` the row's index inside it. 19 bits of file sequence and 36 bits of position
  (64 GiB per binlog file) keep the version below 2**63 (Elasticsearch's ``external`` versions and
  signed longs). A row index above 255 is capped: one rows event holds a given row at most once,
  so ``row`` only orders *different* rows, and capping it never misorders two images of one row.
  A ``RESET MASTER`` restarts file numbering and cannot be ordered by any log position; that needs
  a re-snapshot into a fresh index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.errors import DecodeError
from streams.records import ChangeEvent, Op, Origin

HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"
TRANSACTION_STATUSES = frozenset({"BEGIN", "END"})
SNAPSHOT_TRUE = frozenset(
    {"true", "first", "first_in_data_collection", "last", "last_in_data_collection", "incremental"}
)
SNAPSHOT_FALSE = frozenset({"false", ""})

FILE_SEQ_BITS = 19
POS_BITS = 36
ROW_BITS = 8
_BINLOG_FILE = re.compile(r"^[\w.-]*?\.(\d+)$")
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024  # the default of STREAMS_MAX_EVENT_BYTES; Kafka's default limit is 1 MB
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_change_event(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int = 0,
    offset: int = 0,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> ChangeEvent | None:
    """Decode one record; None means "deliberately nothing to do", DecodeError means "bad input"."""
    if is_skipped_topic(topic) or not value:
        return None
    if len(value) > max_bytes:
        raise DecodeError(f"value is {len(value):,} bytes, over the {max_bytes:,}-byte limit (STREAMS_MAX_EVENT_BYTES)")
    envelope = _unwrap(_decode_bytes(value, what="value"))
    if envelope is None:
        return None
    if not isinstance(envelope, dict):
        raise DecodeError(f"value is not a Debezium envelope (a JSON {type(envelope).__name__})")
    if _is_transaction_metadata(envelope):
        return None
    return _change_event(topic, key, envelope, Origin(topic, partition, offset))


def is_skipped_topic(topic: str) -> bool:
    """Heartbeat, transaction-metadata and schema-history topics carry no row state; a worker that
    subscribes by pattern (``wiki\\..*``) sees them and must not dead-letter them."""
    return topic.startswith(HEARTBEAT_TOPIC_PREFIX) or topic.endswith((".transaction", ".schema-history"))


def _is_transaction_metadata(envelope: Mapping[str, Any]) -> bool:
    return "op" not in envelope and envelope.get("status") in TRANSACTION_STATUSES


def _change_event(
    topic: str,
    key: bytes | None,
    envelope: dict[str, Any],
    origin: Origin,
) -> ChangeEvent:
    op = _op(envelope)
    source = envelope.get("source")
    if not isinstance(source, dict):
        raise DecodeError("envelope has no source block")
    table = source.get("table")
    if not isinstance(table, str) or not table:
        raise DecodeError("source block names no table")
    if topic.rsplit(".", 1)[-1] != table:
        raise DecodeError(f"event for table {table!r} arrived on topic {topic!r}, which carries another table")
    before = _image(envelope, "before")
    after = _image(envelope, "after")
    if op is Op.DELETE and before is None:
        raise DecodeError("delete event carries no before image")
    if op is not Op.DELETE and after is None:
        raise DecodeError(f"{op.name.lower()} event carries no after image")
    name = source.get("name")
    return ChangeEvent(
        source=name if isinstance(name, str) and name else topic.split(".", 1)[0],
        table=table,
        op=op,
        key=_key(key),
        before=before,
        after=after,
        version=source_version(source),
        commit_ts=commit_time(source),
        origin=origin,
        snapshot=_snapshot(source.get("snapshot")),
        transaction=_transaction(envelope, source),
        transaction_order=_transaction_order(envelope),
    )


def _transaction_order(envelope: Mapping[str, Any]) -> int | None:
    metadata = envelope.get("transaction")
    order = metadata.get("total_order") if isinstance(metadata, dict) else None
    return order if isinstance(order, int) and not isinstance(order, bool) and order > 0 else None


def _transaction(envelope: Mapping[str, Any], source: Mapping[str, Any]) -> str | None:
    """The id of the source transaction that committed the event, where the event names one:
    PostgreSQL's txId and MariaDB's GTID first, as Debezium's transaction metadata id for PostgreSQL
    (`txId:LSN`) changes within one large transaction (seen: every 20 rows or so of a COPY)."""
    metadata = envelope.get("transaction")
    found = metadata.get("id") if isinstance(metadata, dict) else None
    for candidate in (source.get("txId"), source.get("gtid"), found):
        if candidate is not None and candidate != "":
            return str(candidate)
    return None


def _decode_bytes(raw: bytes, *, what: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{what} is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 4]!r})") from exc
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError as exc:
        # A leading 0 byte is Confluent's Avro framing: a connector configured with the AvroConverter.
        hint = " (Avro wire format? the connectors write JSON)" if raw[:1] == b"\x00" else ""
        raise DecodeError(f"{what} is not JSON{hint}: {exc}") from exc
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then pay for a full check
        try:
            json.dumps(decoded, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DecodeError(f"{what} holds text that is not Unicode (a lone surrogate escape)") from exc
    return decoded


def _unwrap(decoded: Any) -> Any:
    """Strip the JSON converter's ``{"schema", "payload"}`` wrapper when schemas are enabled."""
    if (
        isinstance(decoded, dict)
        and decoded.keys() == {"schema", "payload"}
        and (decoded["schema"] is None or isinstance(decoded["schema"], dict))
    ):
        return decoded["payload"]
    return decoded


def _op(envelope: Mapping[str, Any]) -> Op:
    raw = envelope.get("op")
    if raw is None:
        raise DecodeError("value is not a Debezium envelope (no op)")
    try:
        return Op(raw)
    except ValueError as exc:
        kind = {"t": "truncate", "m": "logical decoding message"}.get(str(raw), "unknown")
        raise DecodeError(f"{kind} op {raw!r} is not a row change this pipeline can apply") from exc


def _image(envelope: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    image = envelope.get(name)
    if image is None or isinstance(image, dict):
        return image
    raise DecodeError(f"{name} image is not an object")


def _key(raw: bytes | None) -> dict[str, Any]:
    """The row's primary key. Required: without it a row cannot be addressed (a keyless table)."""
    if not raw:
        raise DecodeError("record has no key (is the table missing a primary key?)")
    key = _unwrap(_decode_bytes(raw, what="key"))
    if not isinstance(key, dict) or not key:
        raise DecodeError("key is not a non-empty object")
    return key


def source_version(source: Mapping[str, Any]) -> int:
    """One integer per row image that grows with the source log position (see module docstring)."""
    connector = source.get("connector")
    if connector == "postgresql" or (connector is None and "lsn" in source):
        return _postgres_version(source)
    if connector in ("mysql", "mariadb") or (connector is None and "file" in source):
        return binlog_version(source.get("file"), source.get("pos"), source.get("row"))
    raise DecodeError(f"no source position: unsupported connector {connector!r}")


def _postgres_version(source: Mapping[str, Any]) -> int:
    raw = source.get("lsn")
    if raw is None and source.get("snapshot") == "incremental":
        # An incremental snapshot read (a repair, a new index generation) carries no lsn of its own:
        # `sequence` holds [last commit lsn, current lsn] of the stream when the chunk was read, the
        # position its watermark window closed at, after every change to the row before the read.
        raw = _sequence_lsn(source.get("sequence"))
    lsn = _int(raw, "source.lsn")
    if not 0 <= lsn < 1 << 63:
        raise DecodeError(f"source.lsn {lsn} is out of range")
    return lsn


def _sequence_lsn(sequence: Any) -> Any:
    """The newest lsn in Debezium's `source.sequence` (a JSON list of lsn strings, some null), or None."""
    if not isinstance(sequence, str):
        return None
    try:
        positions = json.loads(sequence)
    except ValueError as exc:
        raise DecodeError(f"source.sequence is not JSON: {sequence[:80]!r}") from exc
    if not isinstance(positions, list):
        raise DecodeError(f"source.sequence is not a list: {sequence[:80]!r}")
    known = [p for p in positions if p is not None]
    return known[-1] if known else None


def binlog_version(file: Any, pos: Any, row: Any) -> int:
    if not isinstance(file, str) or not (match := _BINLOG_FILE.match(file)):
        raise DecodeError(f"source.file {file!r} is not a binlog file name like 'mariadb-bin.000003'")
    seq = int(match.group(1))
    position = _int(pos, "source.pos")
    row_number = _int(0 if row is None else row, "source.row")
    if not 0 <= seq < 1 << FILE_SEQ_BITS:
        raise DecodeError(f"binlog file sequence {seq} does not fit {FILE_SEQ_BITS} bits")
    if not 0 <= position < 1 << POS_BITS:
        raise DecodeError(f"binlog position {position} does not fit {POS_BITS} bits")
    if row_number < 0:
        raise DecodeError(f"source.row {row_number} is negative")
    row_number = min(row_number, (1 << ROW_BITS) - 1)
    return (seq << (POS_BITS + ROW_BITS)) | (position << ROW_BITS) | row_number


def _int(value: Any, name: str) -> int:
    # bool is an int in Python; a boolean position is a broken event, not position 1.
    if isinstance(value, bool) or value is None:
        raise DecodeError(f"missing source position: {name} is {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise DecodeError(f"{name} is not an integer: {value!r}")


def commit_time(source: Mapping[str, Any]) -> datetime:
    """The source's commit time, at the finest resolution the connector gives."""
    for field, per_second in (("ts_ns", 1_000_000_000), ("ts_us", 1_000_000), ("ts_ms", 1_000)):
        value = source.get(field)
        if value is None:
            continue
        stamp = _int(value, f"source.{field}")
        seconds, fraction = divmod(stamp, per_second)
        micros = fraction * 1_000_000 // per_second
        try:
            return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)
        except (OverflowError, OSError, ValueError) as exc:
            raise DecodeError(f"source.{field} {stamp} is not a valid time") from exc
    raise DecodeError("source block has no commit time (ts_ms)")


def _snapshot(value: Any) -> bool:
    if value is None or value is False:
        return False
    if value is True:
        return True
    text = str(value).lower()
    if text in SNAPSHOT_TRUE:
        return True
    if text in SNAPSHOT_FALSE:
        return False
    raise DecodeError(f"source.snapshot {value!r} is not a known snapshot marker")
