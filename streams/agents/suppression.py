"""The suppression ledger: who was forgotten, kept as keyed hashes, checked for every change indexed.

The durable copy is a compacted Kafka topic (key: the entry's hash, value: an Avro ledger entry), so
it survives restarts and is shared by every worker. An entry is either a forgotten *identifier* (a
subject such as ``email:alice@example.com`` or ``contact_id:17``: a change naming it is never
indexed) or a *mention pattern* (an email, full name or phone: text that contains it is indexed
redacted; see pipeline/mentions.py). Both are stored and held as keyed hashes (the key is the
``STREAMS_LEDGER_KEY`` secret), so neither the topic nor a worker's memory is a list of names.
Ledger entries written before hashing (clear ``identifier``) are hashed as they are loaded.

`gate` (agents/write_gate.py) orders the deletion requests and the batches: a batch holds it, beside
other batches, while it re-checks the ledger's `version` and writes, and a deletion request takes it
whole after adding its entries, so no batch planned before the request can land after it. The
request holds it through each generation's erase and releases it before verifying
(streams/forget/lane.py says why).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import cast

from confluent_kafka import Message

from streams import avro
from streams.agents.write_gate import WriteGate
from streams.clients import end_offsets, read_whole_topic
from streams.errors import DecodeError
from streams.pipeline.mentions import HashKind, NamePolicy, Redactor, keyed_hash
from streams.settings import Settings

log = logging.getLogger(__name__)

IDENTIFIER = "identifier"


def identifier_hash(key: bytes, identifier: str) -> str:
    return keyed_hash(key, IDENTIFIER, identifier)


class SuppressionLedger:
    def __init__(
        self, key: bytes, registry_url: str | None = None, *, name_policy: NamePolicy = "nearby", name_window: int = 150
    ) -> None:
        self.key = key
        self.registry_url = registry_url  # entries framed by the Confluent serializer are read with their schema
        self._identifiers: set[str] = set()  # keyed hashes of forgotten identifiers
        self._redactor = Redactor(key, policy=name_policy, window=name_window)
        self.version = 0  # grows with every entry added: a planned batch checks it under the gate
        self.gate = WriteGate()
        # partition -> next offset of the ledger topic applied here (agents/follow_ledger.py goes on from it)
        self.offsets: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._identifiers) + len(self._redactor.hashes)

    def names_any(self, subjects: Iterable[str]) -> bool:
        return any(identifier_hash(self.key, subject) in self._identifiers for subject in subjects)

    def redact(self, text: str) -> str:
        return self._redactor.redact(text) if self._redactor else text

    def add_identifiers(self, identifiers: Iterable[str]) -> dict[str, str]:
        """Add forgotten identifiers; returns hash -> kind, the entries to publish."""
        hashes = {identifier_hash(self.key, name): IDENTIFIER for name in identifiers}
        self._add(hashes)
        return hashes

    def add_patterns(self, hashes: dict[str, HashKind]) -> None:
        self._add(dict(hashes))

    async def apply_records(self, messages: Iterable[Message]) -> int:
        """Apply ledger topic records read live (agents/follow_ledger.py) under the write gate, and advance
        the offsets; returns how many entries were new."""
        entries: dict[str, str] = {}
        offsets: dict[int, int] = {}
        for message in messages:
            if message.error():
                log.warning("ledger topic: %s", message.error())
                continue
            entries.update(ledger_entry(self.key, message, self.registry_url))
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                offsets[partition] = max(offsets.get(partition, 0), offset + 1)
        if not offsets:
            return 0
        before = len(self)
        async with self.gate.exclusive():  # after a batch being written; before any batch planned without these entries
            self._add(entries)
            for partition, offset in offsets.items():
                self.offsets[partition] = max(self.offsets.get(partition, 0), offset)
        return len(self) - before

    def _add(self, hashes: dict[str, str]) -> None:
        identifiers = {h for h, kind in hashes.items() if kind == IDENTIFIER}
        patterns = {h: cast(HashKind, kind) for h, kind in hashes.items() if kind != IDENTIFIER}
        if identifiers - self._identifiers or patterns.keys() - self._redactor.hashes.keys():
            self._identifiers |= identifiers
            self._redactor.add(patterns)
            self.version += 1

    @classmethod
    def load(cls, settings: Settings, timeout_s: float = 30.0) -> SuppressionLedger:
        """Read the compacted ledger topic from the beginning to its end."""
        ledger = cls(
            settings.ledger_key_bytes(),
            settings.schema_registry_url,
            name_policy=settings.forget_name_policy,
            name_window=settings.forget_name_window,
        )
        # The ends are taken before reading: the follower goes on from them, so an entry published while
        # this reads is applied once or twice (harmless), never missed.
        ledger.offsets = end_offsets(settings, settings.ledger_topic, timeout_s)
        entries: dict[str, str] = {}
        for message in read_whole_topic(settings, settings.ledger_topic, f"{settings.worker_id}-ledger", timeout_s):
            entries.update(ledger_entry(ledger.key, message, ledger.registry_url))
        ledger._add(entries)
        log.info(
            "suppression ledger: %d forgotten identifiers, %d mention patterns",
            len(ledger._identifiers),
            len(ledger._redactor.hashes),
        )
        return ledger


def ledger_entry(key: bytes, message: Message, registry_url: str | None = None) -> dict[str, str]:
    """hash -> kind of one ledger topic record ({} for a tombstone or an unreadable record)."""
    value = message.value()
    if value is None or message.key() is None:
        return {}
    try:
        entry = avro.decode("forget_ledger_entry", value, registry_url)
    except DecodeError as exc:
        log.error("unreadable ledger entry at offset %d: %s", message.offset(), exc)
        return {}
    if entry.get("pattern_hash"):
        return {entry["pattern_hash"]: entry.get("pattern_kind") or IDENTIFIER}
    if entry.get("identifier"):  # written before the ledger held hashes only
        return {identifier_hash(key, entry["identifier"]): IDENTIFIER}
    return {}
