"""The suppression ledger: identifiers that were forgotten and must never be indexed again.

The durable copy is a compacted Kafka topic (key: the identifier, value: an Avro ledger entry), so it
survives restarts and is shared by every worker. Each worker keeps the whole set in memory (a few
bytes per forgotten person) and checks it for every change it indexes.

`gate` orders the two lanes: the indexer holds it while it re-checks the ledger and writes a batch,
and a deletion request passes through it after adding its identifiers. So no batch planned before a
request can land after the request has deleted the subject's chunks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from streams.clients import read_whole_topic
from streams.settings import Settings

log = logging.getLogger(__name__)


class SuppressionLedger:
    def __init__(self, identifiers: Iterable[str] = ()) -> None:
        self._identifiers: set[str] = set(identifiers)
        self.gate = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._identifiers)

    def __contains__(self, identifier: str) -> bool:
        return identifier in self._identifiers

    def names_any(self, subjects: Iterable[str]) -> bool:
        return any(subject in self._identifiers for subject in subjects)

    def add(self, identifiers: Iterable[str]) -> None:
        self._identifiers.update(identifiers)

    @classmethod
    def load(cls, settings: Settings, timeout_s: float = 30.0) -> SuppressionLedger:
        """Read the compacted ledger topic from the beginning to its end."""
        identifiers: set[str] = set()
        for message in read_whole_topic(settings, settings.ledger_topic, f"{settings.worker_id}-ledger", timeout_s):
            key = message.key()
            if message.value() is not None and key is not None:
                identifiers.add(key.decode())
        log.info("suppression ledger: %d forgotten identifiers", len(identifiers))
        return cls(identifiers)
