"""Receipts anyone can check: each one signed with Ed25519 and chained to the one its writer published
before it, so that an edited receipt fails its signature and a removed one breaks its chain.

The signed form of a receipt is its JSON form (`Receipt.to_json`: times in UTC to the millisecond,
fields that hold nothing left out) without `signature`, keys sorted, compact, UTF-8. It covers the
chain fields too: `chain`, `sequence`, `previous_hash` (the SHA-256 of the previous receipt's signed
form) and `signing_key` (the SHA-256 of the public key). A field added to the schema later must be
nullable with a null default, so that the signed form of an older receipt stays what was signed.

One chain per writer, not per topic partition: receipts are keyed by request id, so two workers
write to every partition, and a chain per partition would need them to agree on its head. A worker
process starts its own chain (its worker id and a random part) and appends to it under one lock, the
lane and the purge scheduler alike. A send that fails ends the chain (the receipt may or may not be
on the topic: neither a gap nor a fork must follow), and the next receipt starts a new one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from streams.errors import StreamsError
from streams.forget.receipt import Receipt
from streams.settings import Settings

log = logging.getLogger(__name__)


class SigningKeyError(StreamsError):
    """The receipt signing key (or its public key) cannot be read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, stage="forget")


def signed_bytes(receipt: Receipt) -> bytes:
    body = {name: value for name, value in receipt.to_json().items() if name != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def receipt_hash(receipt: Receipt) -> str:
    """What the next receipt of the chain names as its `previous_hash`."""
    return hashlib.sha256(signed_bytes(receipt)).hexdigest()


def key_fingerprint(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


def seal(receipt: Receipt, key: Ed25519PrivateKey, chain: str, sequence: int, previous_hash: str) -> Receipt:
    """The receipt in its place in `chain`, signed."""
    placed = replace(
        receipt,
        chain=chain,
        sequence=sequence,
        previous_hash=previous_hash,
        signing_key=key_fingerprint(key.public_key()),
        signature="",
    )
    return replace(placed, signature=base64.b64encode(key.sign(signed_bytes(placed))).decode())


class ReceiptChain:
    """This worker's chain: seals each receipt in turn and hands it to `send`, one at a time."""

    def __init__(self, key: Callable[[], Ed25519PrivateKey], worker_id: str) -> None:
        self._load, self.worker_id = key, worker_id
        self._key: Ed25519PrivateKey | None = None
        self._lock = asyncio.Lock()
        self._start()

    def _start(self) -> None:
        self.chain, self.sequence, self.head = f"{self.worker_id}/{uuid.uuid4().hex}", 0, ""

    def key(self) -> Ed25519PrivateKey:
        """Read when first needed; `streams worker` asks for it at start, so a missing key stops the start."""
        if self._key is None:
            self._key = self._load()
        return self._key

    async def publish(self, receipt: Receipt, send: Callable[[Receipt], Awaitable[None]]) -> Receipt:
        async with self._lock:
            sealed = seal(receipt, self.key(), self.chain, self.sequence, self.head)
            try:
                await send(sealed)
            except BaseException:
                log.warning(
                    "a receipt of chain %s may not have been delivered: the next starts a new chain", self.chain
                )
                self._start()
                raise
            self.sequence, self.head = self.sequence + 1, receipt_hash(sealed)
            return sealed


# Reading and checking.


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot read the receipt signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot read the receipts' public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def ensure_local_signing_key(settings: Settings) -> Path:
    """The local stack's receipt signing key and its public key beside it, generated once.

    For development and the integration tests; the private key is readable by its owner alone. A key
    file named in the settings is the operator's to manage and is never generated."""
    path = settings.receipt_signing_key_path()
    if settings.receipt_signing_key_file is not None:
        return path
    if path.exists():
        if not settings.receipt_public_key_path().exists():  # the public key can always be derived again
            _write_public(settings, load_private_key(path))
        return path
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    _write_public(settings, key)
    log.info("generated the local stack's receipt signing key in %s", path)
    return path


def _write_public(settings: Settings, key: Ed25519PrivateKey) -> None:
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    settings.receipt_public_key_path().write_bytes(public)


@dataclass(frozen=True)
class Check:
    """What `verify` found about one receipt: problems, each saying which check failed and where."""

    receipt: Receipt
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def signature_problems(receipt: Receipt, key: Ed25519PublicKey) -> list[str]:
    where = f"receipt {receipt.request_id} ({receipt.status}, chain {receipt.chain or '-'} #{receipt.sequence})"
    if not receipt.signature:
        return [f"{where}: not signed (written before receipts were signed, or by something else)"]
    if receipt.signing_key != key_fingerprint(key):
        return [f"{where}: signed by another key ({receipt.signing_key[:16]}…), not by this public key"]
    try:
        key.verify(base64.b64decode(receipt.signature), signed_bytes(receipt))
    except (InvalidSignature, ValueError):
        return [f"{where}: broken signature: the receipt is not what was signed (edited?)"]
    return []


def chain_problems(receipt: Receipt, published: Iterable[Receipt], key: Ed25519PublicKey) -> list[str]:
    """Check `receipt` in its chain, as the receipts topic holds it (`published`): every receipt of the
    chain from the first up to the newest is there once, signed, and names its predecessor's hash;
    the one at the receipt's place is the receipt itself."""
    if not receipt.chain:
        return [f"receipt {receipt.request_id}: belongs to no chain"]
    chain: dict[int, list[Receipt]] = {}
    for other in published:
        if other.chain == receipt.chain:
            chain.setdefault(other.sequence, []).append(other)
    problems: list[str] = []
    newest = max([receipt.sequence, *chain])
    for sequence in range(newest + 1):
        found = chain.get(sequence, [])
        if not found:
            problems.append(f"chain {receipt.chain}: receipt #{sequence} is missing from the topic (removed?)")
            continue
        if len({receipt_hash(one) for one in found}) > 1:
            problems.append(f"chain {receipt.chain}: two different receipts claim #{sequence}")
        here = found[0]
        problems += signature_problems(here, key) if here is not receipt else []
        if sequence == 0 and here.previous_hash:
            problems.append(f"chain {receipt.chain}: receipt #0 names a predecessor")
        previous = chain.get(sequence - 1)
        if sequence and previous and here.previous_hash != receipt_hash(previous[0]):
            problems.append(
                f"chain {receipt.chain}: receipt #{sequence} does not follow #{sequence - 1} "
                f"(#{sequence - 1} edited or replaced?)"
            )
    at_place = chain.get(receipt.sequence, [])
    if at_place and all(receipt_hash(one) != receipt_hash(receipt) for one in at_place):
        problems.append(f"chain {receipt.chain}: the topic holds another receipt at #{receipt.sequence}")
    return problems


def check(receipt: Receipt, published: Iterable[Receipt], key: Ed25519PublicKey, *, chain: bool = True) -> Check:
    """The receipt's signature, and (`chain`) its chain as `published` holds it."""
    problems = signature_problems(receipt, key)
    if chain and receipt.signature:
        problems += chain_problems(receipt, published, key)
    return Check(receipt, problems)
