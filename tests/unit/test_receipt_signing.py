"""Receipts anyone can check: each is signed with Ed25519 and chained to its writer's previous one, so an
edited receipt fails its signature and a removed or replaced one breaks its chain. Each check is made to
fail here once on purpose."""

from __future__ import annotations

import asyncio
import json
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams import avro
from streams.agents import receipt_commands
from streams.cli import main
from streams.forget.outcome import ForgetOutcome
from streams.forget.receipt import NOTHING_INDEXED, UNSEARCHABLE, Receipt
from streams.forget.request import DeletionRequest
from streams.forget.signing import (
    ReceiptChain,
    check,
    ensure_local_signing_key,
    load_private_key,
    load_public_key,
    receipt_hash,
)
from streams.forget.verify import Verification
from streams.settings import Settings

KEY = Ed25519PrivateKey.generate()
AT = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)  # microseconds: Avro keeps milliseconds


def _receipt(subject: str, removed: int = 1) -> Receipt:
    request = DeletionRequest(f"r-{subject}", subject, "email", "compliance", AT)
    outcome = ForgetOutcome([f"email:{subject}"])
    for n in range(removed):
        outcome.note_removed(("v1", "crm"), f"crm/contact/{n}#root#0", f"crm/contact/{n}")
    return Receipt.unsearchable(
        request,
        identifiers=outcome.identifiers,
        pattern_hashes=["h1"],
        outcome=outcome,
        generations=["v1"],
        sources=["crm"],
        dead_letters_tombstoned=0,
        verification=Verification(0, 0, 0, 0),
        received_at=AT,
        unsearchable_at=AT + timedelta(seconds=0.4),
    )


def _published(count: int, key: Ed25519PrivateKey = KEY) -> list[Receipt]:
    """`count` receipts as one worker publishes them, read back from their Avro records."""
    chain = ReceiptChain(lambda: key, "streams-worker")
    records: list[bytes] = []

    async def send(receipt: Receipt) -> None:
        records.append(avro.encode("deletion_receipt", receipt.to_dict()))

    async def publish_all() -> None:
        for n in range(count):
            await chain.publish(_receipt(f"p{n}@example.com"), send)

    asyncio.run(publish_all())
    return [Receipt.from_dict(avro.decode("deletion_receipt", record)) for record in records]


def test_a_published_chain_verifies_after_the_avro_round_trip() -> None:
    published = _published(3)
    assert [r.sequence for r in published] == [0, 1, 2] and len({r.chain for r in published}) == 1
    assert published[1].previous_hash == receipt_hash(published[0])
    for receipt in published:
        assert check(receipt, published, KEY.public_key()).problems == []


def test_an_edited_receipt_fails_its_signature() -> None:
    published = _published(2)
    edited = replace(published[0], subject="someone-else@example.com")
    problems = check(edited, published, KEY.public_key()).problems
    assert any("broken signature" in problem for problem in problems), problems


def test_a_removed_receipt_breaks_the_chain() -> None:
    published = _published(3)
    without_the_middle = [published[0], published[2]]
    problems = check(published[2], without_the_middle, KEY.public_key()).problems
    assert problems == [f"chain {published[0].chain}: receipt #1 is missing from the topic (removed?)"]


def test_a_receipt_replaced_in_the_chain_breaks_the_link_after_it() -> None:
    published = _published(3)
    # What someone without the key can do: put another validly signed receipt (another chain's) in its place.
    other = replace(_published(1)[0], chain=published[0].chain, sequence=1)
    problems = check(published[2], [published[0], other, published[2]], KEY.public_key()).problems
    assert any("broken signature" in problem for problem in problems)
    assert any("#2 does not follow #1" in problem for problem in problems), problems


def test_a_receipt_signed_with_another_key_is_refused() -> None:
    published = _published(1, Ed25519PrivateKey.generate())
    [problem] = check(published[0], published, KEY.public_key()).problems
    assert "signed by another key" in problem


def test_an_unsigned_receipt_is_refused() -> None:
    receipt = _receipt("old@example.com")
    [problem] = check(receipt, [], KEY.public_key()).problems
    assert "not signed" in problem


def test_a_failed_send_ends_the_chain_instead_of_leaving_a_gap_or_a_fork() -> None:
    chain = ReceiptChain(lambda: KEY, "w")
    sent: list[Receipt] = []
    failing = [True, False, False]

    async def send(receipt: Receipt) -> None:
        if failing.pop(0):
            raise ConnectionError("broker away")
        sent.append(receipt)

    async def scenario() -> None:
        with pytest.raises(ConnectionError):
            await chain.publish(_receipt("a@example.com"), send)
        await chain.publish(_receipt("b@example.com"), send)
        await chain.publish(_receipt("c@example.com"), send)

    asyncio.run(scenario())
    assert [r.sequence for r in sent] == [0, 1] and sent[0].previous_hash == ""
    assert all(check(r, sent, KEY.public_key()).ok for r in sent)


def test_a_rejected_receipt_carries_no_verification_and_still_verifies() -> None:
    rejected = Receipt.rejected("r9", {"subject": "x", "subject_kind": "email"}, "InvalidRequest: no", AT)
    assert rejected.verification is None and "verification" not in rejected.to_json()
    decoded = Receipt.from_dict(avro.decode("deletion_receipt", avro.encode("deletion_receipt", rejected.to_dict())))
    assert decoded.verification is None and decoded.unsearchable_at is None

    async def scenario() -> list[Receipt]:
        sent: list[Receipt] = []

        async def send(receipt: Receipt) -> None:
            sent.append(
                Receipt.from_dict(avro.decode("deletion_receipt", avro.encode("deletion_receipt", receipt.to_dict())))
            )

        await ReceiptChain(lambda: KEY, "w").publish(rejected, send)
        return sent

    sent = asyncio.run(scenario())
    assert check(sent[0], sent, KEY.public_key()).ok


def test_a_subject_never_indexed_gets_nothing_indexed_not_unsearchable() -> None:
    assert _receipt("ghost@example.com", removed=0).status == NOTHING_INDEXED
    assert _receipt("ann@example.com", removed=1).status == UNSEARCHABLE


def test_the_local_stack_key_is_generated_once_with_its_public_key_beside_it(tmp_path: Path) -> None:
    settings = Settings(stack_home=tmp_path)
    path = ensure_local_signing_key(settings)
    assert path == tmp_path / "receipt-signing-key.pem" and stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    assert ensure_local_signing_key(settings).read_bytes() == first
    key = load_private_key(path)
    public = load_public_key(tmp_path / "receipt-signing-key.pub.pem")
    public.verify(key.sign(b"x"), b"x")
    (tmp_path / "receipt-signing-key.pub.pem").unlink()
    ensure_local_signing_key(settings)  # a lost public key is derived again from the private one
    load_public_key(tmp_path / "receipt-signing-key.pub.pem").verify(key.sign(b"y"), b"y")
    managed = Settings(stack_home=tmp_path, receipt_signing_key_file=tmp_path / "managed.pem")
    ensure_local_signing_key(managed)
    assert not (tmp_path / "managed.pem").exists()  # a key the settings name is the operator's


def _verify_file(tmp_path: Path, receipt: Receipt, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(
        receipt_commands,
        "get_settings",
        lambda: Settings(stack_home=tmp_path, receipt_signing_key_file=tmp_path / "k.pem"),
    )
    (tmp_path / "k.pub.pem").write_bytes(_public_pem())
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt.to_json(), indent=2))
    return CliRunner().invoke(main, ["receipt", "verify", str(path), "--no-chain"])


def _public_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization

    return KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_receipt_verify_checks_a_file_and_says_what_it_certifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = _published(1)[0]
    result = _verify_file(tmp_path, receipt, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "OK: signature verified" in result.output
    assert "1 chunks deleted, 0 chunks redacted" in result.output and "searches found nothing" in result.output


def test_receipt_verify_fails_an_edited_file_with_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edited = replace(_published(1)[0], dead_letters_tombstoned=5)
    result = _verify_file(tmp_path, edited, monkeypatch)
    assert result.exit_code == 1 and "broken signature" in result.output, result.output


def test_receipt_verify_by_id_names_the_receipt_removed_from_its_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = _published(3)
    settings = Settings(stack_home=tmp_path, receipt_signing_key_file=tmp_path / "k.pem")
    monkeypatch.setattr(receipt_commands, "get_settings", lambda: settings)
    (tmp_path / "k.pub.pem").write_bytes(_public_pem())
    monkeypatch.setattr(receipt_commands, "published_receipts", lambda _settings: published)
    whole = CliRunner().invoke(main, ["receipt", "verify", published[2].request_id])
    assert whole.exit_code == 0 and "OK: signature and chain" in whole.output, whole.output
    monkeypatch.setattr(receipt_commands, "published_receipts", lambda _settings: [published[0], published[2]])
    cut = CliRunner().invoke(main, ["receipt", "verify", published[2].request_id])
    assert cut.exit_code == 1 and "receipt #1 is missing from the topic (removed?)" in cut.output, cut.output


def test_two_workers_writing_to_one_topic_each_keep_a_whole_chain_and_a_purge_joins_the_resuming_one() -> None:
    """Receipts keyed by request id land on every partition from every worker: each worker's chain is
    its own, so interleaving them on the topic breaks neither; a purge receipt that another worker
    publishes (it resumed the purge) goes into that worker's chain."""
    first, second = ReceiptChain(lambda: KEY, "w"), ReceiptChain(lambda: KEY, "w")
    topic: list[Receipt] = []

    async def send(receipt: Receipt) -> None:
        topic.append(
            Receipt.from_dict(avro.decode("deletion_receipt", avro.encode("deletion_receipt", receipt.to_dict())))
        )

    async def scenario() -> None:
        for n in range(3):
            await first.publish(_receipt(f"a{n}@example.com"), send)
            await second.publish(_receipt(f"b{n}@example.com"), send)
        await second.publish(topic[0].purged(AT + timedelta(minutes=1)), send)  # first's request, purged by second

    asyncio.run(scenario())
    assert first.chain != second.chain
    assert all(check(receipt, topic, KEY.public_key()).ok for receipt in topic)
    purged = topic[-1]
    assert purged.status == "purged" and purged.chain == second.chain and purged.sequence == 3
    assert check(topic[0], topic, KEY.public_key()).ok  # the unsearchable receipt still verifies in its own chain
