"""The console's receipts: the tail of each receipts partition, the latest receipt per request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams import avro
from streams.forget import latest_receipts as module
from streams.forget.receipt import Receipt
from streams.settings import Settings


class Message:
    def __init__(self, partition: int, offset: int, value: bytes | None) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value


class Consumer:
    closed = False

    def close(self) -> None:
        self.closed = True


def receipt(request_id: str, minute: int, status: str = "rejected") -> bytes:
    record = Receipt.rejected(
        request_id, {"subject": "x@example.com"}, "why", datetime(2026, 1, 1, 9, minute, tzinfo=UTC)
    )
    return avro.encode("deletion_receipt", {**record.to_dict(), "status": status})


def test_the_latest_receipt_per_request_newest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    topic: dict[int, list[bytes | None]] = {
        0: [receipt("a", 1, "unsearchable"), receipt("b", 2), receipt("a", 1, "purged")],
        1: [b"not avro", None, receipt("c", 3)],
    }
    asked: dict[str, Any] = {}
    consumer = Consumer()

    def read_to_end(consumer: Any, name: str, start: dict[int, int], **options: Any) -> Any:
        asked["start"] = start
        for partition, values in topic.items():
            for offset in range(start[partition], len(values)):
                yield Message(partition, offset, values[offset])

    monkeypatch.setattr(module, "kafka_consumer", lambda settings, group: consumer)
    monkeypatch.setattr(module, "watermarks", lambda c, name: {p: (0, len(v)) for p, v in topic.items()})
    monkeypatch.setattr(module, "read_to_end", read_to_end)

    records = module.latest_receipts(Settings(), limit=3)
    assert [(r["request_id"], r["status"]) for r in records] == [("c", "rejected"), ("b", "rejected"), ("a", "purged")]
    assert asked["start"] == {0: 0, 1: 0}
    assert consumer.closed

    assert [r["request_id"] for r in module.latest_receipts(Settings(), limit=1)] == ["c"]
    assert asked["start"] == {0: 2, 1: 2}  # only each partition's tail is read
