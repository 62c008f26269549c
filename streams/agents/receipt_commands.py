"""`streams receipt verify FILE|ID`: check a receipt's signature and its place in its chain, and say
what it certifies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from streams import avro
from streams.clients import read_whole_topic, unique_group
from streams.errors import DecodeError
from streams.forget.receipt import GIVEN_UP, NOTHING_INDEXED, PURGED, Receipt, instant
from streams.forget.signing import SigningKeyError, check, load_public_key
from streams.settings import Settings, get_settings


def published_receipts(settings: Settings) -> list[Receipt]:
    """Every receipt on the receipts topic (a record that is not one is skipped: it is in no chain)."""
    found = []
    for message in read_whole_topic(settings, settings.receipts_topic, unique_group("streams-receipt-verify")):
        value = message.value()
        if value is None:
            continue
        try:
            found.append(Receipt.from_dict(avro.decode("deletion_receipt", value, settings.schema_registry_url)))
        except DecodeError:
            continue
    return found


def read_receipt_file(path: Path) -> Receipt:
    """A receipt as `streams forget --json` printed it, or as its Avro record."""
    data = path.read_bytes()
    if data[:1] in (avro.SINGLE_OBJECT_MAGIC[:1], avro.CONFLUENT_MAGIC):
        return Receipt.from_dict(avro.decode("deletion_receipt", data))
    body: Any = json.loads(data)
    return Receipt.from_json(body)


def certifies(receipt: Receipt) -> list[str]:
    """What a receipt certifies, in plain words."""
    head = f"request {receipt.request_id} for {receipt.subject or '(no subject)'} ({receipt.subject_kind or '?'})"
    if receipt.status in GIVEN_UP:
        return [
            f"{head} was {receipt.status}: nothing was searched or removed; reason: {receipt.error or 'none given'}"
        ]
    deleted = sum(count.chunks for count in receipt.removed)
    redacted = sum(count.chunks for count in receipt.redacted)
    generations = sorted({count.index for count in [*receipt.removed, *receipt.redacted]})
    lines = [
        f"{head}: nothing about the subject was held (searched and verified)"
        if receipt.status == NOTHING_INDEXED
        else f"{head} is {receipt.status}: {deleted} chunks deleted, {redacted} chunks redacted, "
        f"{receipt.state_records_removed} state records scrubbed, "
        f"{receipt.dead_letters_tombstoned} dead letters tombstoned",
        f"  identifiers forgotten: {', '.join(receipt.identifiers) or 'none'}; "
        f"index generations searched: {', '.join(generations) or 'none'}",
    ]
    if receipt.verification is not None and receipt.unsearchable_at is not None:
        v = receipt.verification
        lines.append(
            f"  searches found nothing at {instant(receipt.unsearchable_at)} (subject field {v.subject_field_hits}, "
            f"BM25 {v.bm25_hits}, kNN {v.knn_hits}, hybrid {v.hybrid_hits} hits)"
        )
    if receipt.status == PURGED and receipt.purged_at is not None:
        lines.append(f"  deleted documents purged from disk at {instant(receipt.purged_at)}")
    return lines


@click.group()
def receipt() -> None:
    """Deletion receipts."""


@receipt.command()
@click.argument("what")
@click.option("--no-chain", is_flag=True, help="Check the signature only (no Kafka needed); the chain is not checked.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(what: str, no_chain: bool, as_json: bool) -> None:
    """Check WHAT (a receipt file, as `streams forget --json` prints it, or a request id) against the
    receipts' public key (STREAMS_RECEIPT_PUBLIC_KEY_FILE) and its chain on the receipts topic, and say
    what it certifies. A broken signature, or a chain with a receipt edited or removed, exits with 1.

    \b
    Examples:
      streams forget ann@example.com --wait --json > receipt.json && streams receipt verify receipt.json
      streams receipt verify 1b4e28ba-2fa1-11d2-883f-0016d3cca427
    """
    settings = get_settings()
    try:
        key = load_public_key(settings.receipt_public_key_path())
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    path = Path(what)
    published = [] if no_chain and path.is_file() else published_receipts(settings)
    if path.is_file():
        try:
            targets = [read_receipt_file(path)]
        except (ValueError, KeyError, TypeError, DecodeError) as exc:
            raise click.ClickException(f"{path} is not a receipt: {exc}") from exc
    else:
        targets = [one for one in published if one.request_id == what]
        if not targets:
            raise click.ClickException(f"no receipt for request {what} on {settings.receipts_topic}")
    checks = [check(target, [] if no_chain else published, key, chain=not no_chain) for target in targets]
    if as_json:
        body = [{"receipt": c.receipt.to_json(), "ok": c.ok, "problems": c.problems} for c in checks]
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        for c in checks:
            if c.ok:
                checked = "signature" if no_chain else f"signature and chain {c.receipt.chain} #{c.receipt.sequence}"
                click.echo(f"OK: {checked} verified; the receipt certifies:")
                for line in certifies(c.receipt):
                    click.echo(f"  {line}")
            else:
                click.echo(f"FAILED: request {c.receipt.request_id} ({c.receipt.status})")
                for problem in c.problems:
                    click.echo(f"  {problem}")
    if not all(c.ok for c in checks):
        sys.exit(1)
