"""Several workers and one suppression ledger: a worker applies entries another worker published, under
its write gate, and advances its offsets; a deletion request waits for every live worker whose
offsets are behind the entries it published (elastic/worker_registry.lagging)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from streams import avro
from streams.agents.suppression import SuppressionLedger, identifier_hash
from streams.elastic.worker_registry import LiveWorker, lagging

KEY = b"unit-test-ledger-key"


class FakeMessage:
    """The part of confluent_kafka.Message the ledger reads."""

    def __init__(self, partition: int, offset: int, key: bytes | None, value: bytes | None, error: Any = None) -> None:
        self._partition, self._offset, self._key, self._value, self._error = partition, offset, key, value, error

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> Any:
        return self._error


def entry(partition: int, offset: int, digest: str, kind: str = "identifier") -> FakeMessage:
    record = {
        "identifier": None,
        "pattern_hash": digest,
        "pattern_kind": kind,
        "request_id": "r1",
        "forgotten_at": datetime.now(UTC),
    }
    return FakeMessage(partition, offset, digest.encode(), avro.encode("forget_ledger_entry", record))


def test_entries_published_by_another_worker_suppress_here_and_move_the_offsets() -> None:
    ledger = SuppressionLedger(KEY)
    ledger.offsets = {0: 5, 1: 2}
    digest = identifier_hash(KEY, "email:alice@example.com")
    assert not ledger.names_any(["email:alice@example.com"])
    version = ledger.version
    added = asyncio.run(ledger.apply_records([entry(1, 2, digest), FakeMessage(0, 5, b"k", None)]))
    assert added == 1
    assert ledger.names_any(["email:alice@example.com"])
    assert ledger.version == version + 1  # a batch planned before this is planned again
    assert ledger.offsets == {0: 6, 1: 3}  # a tombstone moves the offset too


def test_entries_wait_for_a_batch_being_written() -> None:
    async def scenario() -> list[str]:
        ledger = SuppressionLedger(KEY)
        order: list[str] = []

        async def writer() -> None:
            async with ledger.gate.exclusive():
                await asyncio.sleep(0.05)
                order.append("batch written")

        async def follower() -> None:
            await asyncio.sleep(0.01)
            await ledger.apply_records([entry(0, 0, identifier_hash(KEY, "user_id:7"))])
            order.append("entries applied")

        await asyncio.gather(writer(), follower())
        return order

    assert asyncio.run(scenario()) == ["batch written", "entries applied"]


def test_an_entry_seen_twice_changes_nothing() -> None:
    ledger = SuppressionLedger(KEY)
    digest = identifier_hash(KEY, "contact_id:3")
    asyncio.run(ledger.apply_records([entry(0, 0, digest)]))
    version = ledger.version
    assert asyncio.run(ledger.apply_records([entry(0, 0, digest)])) == 0
    assert ledger.version == version


def test_a_request_waits_for_every_worker_behind_its_entries() -> None:
    offsets = {"a:1": {0: 4, 1: 9}, "b:2": {0: 3, 1: 9}, "c:3": {1: 9}}
    workers = {instance: LiveWorker(applied) for instance, applied in offsets.items()}
    assert lagging(workers, {0: 4, 1: 9}) == ["b:2", "c:3"]
    assert lagging(workers, {1: 9}) == []
    assert lagging(workers, {1: 10}) == ["a:1", "b:2", "c:3"]
    assert lagging({}, {0: 1}) == []
