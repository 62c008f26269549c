"""What a deletion request has removed and redacted so far, and whom it forgets, kept until its
receipt is on Kafka; then its receipt, kept until the purge that expunges the deleted documents has run.

A request is handled again when an attempt fails late (its verification, a timeout) or when the
worker dies before the request's offset moves. The next attempt finds gone what the last one
deleted, so a receipt built from that attempt alone would certify "nothing removed". Each step of
`erase.erase` notes what it is about to delete or rewrite and saves the note here
*before* writing; the next attempt (in this worker or another) starts from the saved note.

The next attempt also finds the identity record scrubbed: expanding the request's identifier again
finds neither the identifiers it linked nor how the person is written (full name, phone), so an
attempt that redacted and verified by what it can still find (the email alone) would leave a mention
of the name searchable and certify it `unsearchable`. The note therefore carries the expanded
identity too, identifiers and mention patterns, encrypted (AES-GCM, bound to the request id, under a
key derived with HKDF from `STREAMS_LEDGER_KEY`): its first save precedes the first erase write, so
a worker dying at any point after the scrub leaves the next one everything the request must erase
and verify. A note that this worker's key cannot open is refused (`UnreadableNote`), never ignored:
a worker with another key would otherwise certify a request by the email alone.

Once the receipt is published the record holds the receipt too (`awaiting_purge`): the purge runs
up to `purge_window_s` later, and a worker that dies in between would lose it, so a starting worker
schedules every purge still pending (`pending_purges`). The note stays beside it: a worker that dies
after the receipt and before the request's offset moves has the request handled again, and that
attempt loads the whole identity and what was removed, so its receipt certifies no less. The record,
encrypted identity included, is deleted (`clear`) after the purge and its "purged" receipt.

One small record per request in its own index (`settings.forget_progress_index`, not behind the
chunks alias): while the request is handled, chunk and document ids per index generation and source,
and the identity as ciphertext only (no identifier or pattern in clear text, nothing of it indexed);
while the purge is pending, the receipt too (which names the subject and its identifiers, as the
receipts topic does).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from elasticsearch import AsyncElasticsearch, Elasticsearch, NotFoundError

from streams import avro
from streams.elastic.record_index import ensure_record_index
from streams.errors import StreamsError
from streams.forget.outcome import ForgetOutcome
from streams.forget.receipt import Receipt
from streams.pipeline.mentions import MentionKind, MentionPattern

AWAITING_PURGE = "awaiting_purge"
MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {"request_id": {"type": "keyword"}, "state": {"type": "keyword"}},
}
_SETS = ("removed", "removed_documents", "redacted", "redacted_documents")
_NOTE_KEY_INFO = b"streams forget progress note v1"  # a key of its own: never the ledger's hashing key itself
_NONCE_BYTES = 12


class UnreadableNote(StreamsError):
    """A saved note this worker cannot decrypt: another ledger key wrote it, or it was altered."""

    stage = "forget"


def note_key(ledger_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_NOTE_KEY_INFO).derive(ledger_key)


def seal_identity(key: bytes, request_id: str, identifiers: list[str], patterns: set[MentionPattern]) -> str:
    """The identity as base64 ciphertext, bound to its request (a note copied to another request
    does not open)."""
    plain = json.dumps(
        {
            "identifiers": sorted(identifiers),
            "patterns": sorted([pattern.kind, pattern.value] for pattern in patterns),
        }
    ).encode()
    nonce = os.urandom(_NONCE_BYTES)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain, request_id.encode())).decode()


def open_identity(key: bytes, request_id: str, sealed: str) -> tuple[list[str], set[MentionPattern]]:
    raw = base64.b64decode(sealed)
    try:
        plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], request_id.encode())
    except InvalidTag:
        raise UnreadableNote(
            f"the progress note of deletion request {request_id} does not open with this worker's "
            "STREAMS_LEDGER_KEY (written under another key, or altered): refusing to handle the request "
            "without the identity it saved"
        ) from None
    body = json.loads(plain)
    patterns = {MentionPattern(cast(MentionKind, kind), value) for kind, value in body["patterns"]}
    return list(body["identifiers"]), patterns


def ensure_progress_index(client: Elasticsearch, index: str) -> None:
    ensure_record_index(client, index, MAPPING)


def to_json(request_id: str, outcome: ForgetOutcome, key: bytes) -> dict[str, Any]:
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for name in _SETS:
        for (index, source), ids in getattr(outcome, name).items():
            entries.setdefault((index, source), {"index": index, "source": source})[name] = sorted(ids)
    return {
        "request_id": request_id,
        "state": "forgetting",
        "state_records": outcome.state_records,
        "entries": list(entries.values()),
        "identity": seal_identity(key, request_id, outcome.identifiers, outcome.patterns),
    }


def from_json(body: dict[str, Any], request_id: str, key: bytes) -> ForgetOutcome:
    identifiers, patterns = open_identity(key, request_id, body["identity"]) if body.get("identity") else ([], set())
    outcome = ForgetOutcome(identifiers, state_records=int(body.get("state_records", 0)), patterns=patterns)
    for entry in body.get("entries", []):
        where = (entry["index"], entry["source"])
        for name in _SETS:
            if entry.get(name):
                getattr(outcome, name)[where] = set(entry[name])
    return outcome


class ForgetProgress:
    """The saved outcome of one request: `load` at the start of an attempt, `save` before each write,
    `clear` after the purge. `key` is the worker's ledger key (`settings.ledger_key_bytes()`), from
    which the note's own key is derived; only `clear` works without it."""

    def __init__(self, client: AsyncElasticsearch, index: str, request_id: str, key: bytes | None = None) -> None:
        self.client, self.index, self.request_id = client, index, request_id
        self._key = note_key(key) if key is not None else None

    @property
    def key(self) -> bytes:
        if self._key is None:
            raise ValueError("a progress note is read and written with the ledger key")
        return self._key

    async def load(self, into: ForgetOutcome) -> ForgetOutcome:
        """`into` with what earlier attempts (any worker's) saved added: what they removed and redacted,
        and whom they forget. Raises UnreadableNote for a note another key wrote."""
        try:
            response = await self.client.get(index=self.index, id=self.request_id)
        except NotFoundError:
            return into
        saved = from_json(response["_source"], self.request_id, self.key)
        for name in _SETS:
            mine, theirs = getattr(into, name), getattr(saved, name)
            for key, ids in theirs.items():
                mine.setdefault(key, set()).update(ids)
        into.state_records = max(into.state_records, saved.state_records)
        into.identifiers = sorted(set(into.identifiers) | set(saved.identifiers))
        into.patterns |= saved.patterns
        return into

    async def save(self, outcome: ForgetOutcome) -> None:
        document = to_json(self.request_id, outcome, self.key)
        await self.client.index(index=self.index, id=self.request_id, document=document)

    async def await_purge(self, receipt: Receipt, outcome: ForgetOutcome | None = None) -> None:
        """The receipt is out: keep it until the purge has run and said so, beside the note (`outcome`):
        a worker dying before the request's offset moves has it handled again, and that attempt must
        still verify, and certify, the whole identity."""
        encoded = base64.b64encode(avro.encode("deletion_receipt", receipt.to_dict())).decode()
        note = to_json(self.request_id, outcome, self.key) if outcome is not None else {}
        body = {**note, "request_id": self.request_id, "state": AWAITING_PURGE, "receipt": encoded}
        await self.client.index(index=self.index, id=self.request_id, document=body)

    async def clear(self) -> None:
        await self.client.options(ignore_status=404).delete(index=self.index, id=self.request_id)


async def pending_purges(client: AsyncElasticsearch, index: str, size: int = 10_000) -> list[Receipt]:
    """The receipts of every request whose purge has not run (a worker died in the window)."""
    await client.indices.refresh(index=index)
    response = await client.search(index=index, size=size, query={"term": {"state": AWAITING_PURGE}})
    return [
        Receipt.from_dict(avro.decode("deletion_receipt", base64.b64decode(hit["_source"]["receipt"])))
        for hit in response["hits"]["hits"]
    ]
