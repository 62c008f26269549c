"""`streams forget`: publish a right-to-be-forgotten request, and optionally wait for its receipt."""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click
from confluent_kafka import Consumer, KafkaException

from streams import avro
from streams.agents.locate_commands import read_report, subject_options
from streams.cli import seconds_option
from streams.clients import consumer_at_end, kafka_producer
from streams.errors import InvalidRequest
from streams.forget.locate import SubjectReport, unaccounted
from streams.forget.receipt import FINAL, GIVEN_UP, NOTHING_INDEXED, UNSEARCHABLE, Receipt
from streams.forget.request import DeletionRequest, validate_deletion_request
from streams.settings import Settings, get_settings


def deletion_request(
    subject: str, kind: str, requested_by: str, reason: str, report: SubjectReport | None = None
) -> dict[str, Any]:
    """A new request, as the record the deletion topic takes; from a report, its subject and identifiers."""
    if report is not None:
        subject, kind = report.subject, report.subject_kind
    return DeletionRequest(
        str(uuid.uuid4()),
        subject,
        kind,
        requested_by,
        datetime.now(UTC),
        reason,
        report_id=report.report_id if report else None,
        identifiers=list(report.identifiers) if report else [],
    ).to_dict()


def receipts_consumer(settings: Settings) -> Consumer:
    """A consumer positioned at the end of the receipts topic: open it before publishing the request."""
    return consumer_at_end(settings, [settings.receipts_topic], "streams-forget")


def publish_request(settings: Settings, request: dict[str, Any]) -> None:
    producer = kafka_producer(settings, acks="all")
    producer.produce(
        settings.deletion_topic,
        key=request["request_id"].encode(),
        value=avro.encode("deletion_request", request, settings.schema_registry_url),
    )
    if producer.flush(15) > 0:
        raise click.ClickException(f"the request was not delivered to Kafka at {settings.kafka_bootstrap}")


def wait_for_receipt(
    consumer: Consumer,
    request_id: str,
    timeout_s: float,
    status: str = UNSEARCHABLE,
    registry_url: str | None = None,
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        value = message.value()
        if message.key() != request_id.encode() or value is None:
            continue
        receipt = avro.decode("deletion_receipt", value, registry_url)
        # A receipt that is final (nothing indexed, rejected, failed) gets no later one: waiting for its
        # purge would only time out.
        if status == UNSEARCHABLE or receipt["status"] in FINAL:
            return receipt
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@click.command()
@click.argument("subject", required=False)
@click.option(
    "--report",
    "report_id",
    help="Forget the subject of this subject access report (`streams locate`), its identifiers included.",
)
@subject_options
@click.option("--reason", default="GDPR Art. 17 request", show_default=True, help="Why.")
@click.option("--wait", is_flag=True, help="Wait for the receipt and print it.")
@click.option("--purged", is_flag=True, help="With --wait: wait for the receipt of the physical purge too.")
@seconds_option("--timeout", default=120.0, help="Seconds to wait for the receipt.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def forget(
    subject: str | None,
    report_id: str | None,
    kind: str,
    requested_by: str,
    reason: str,
    wait: bool,
    purged: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Publish a deletion request for SUBJECT (an email by default) to the deletion topic.

    The worker makes every chunk about the subject unsearchable, records the subject in the
    suppression ledger so that no replay or re-snapshot indexes it again, purges the deleted
    documents physically, and publishes a receipt. A subject the worker would reject (empty, or not
    of its kind) is refused here, before anything is published (exit status 2).

    With --report ID it forgets what a subject access report (`streams locate`) listed: the report's
    subject and every identifier it found; with --wait, every document and dead letter the report
    listed must be accounted for in the receipt, else the command says which and exits with 1.

    \b
    Examples:
      streams forget ann@example.com --wait
      streams forget 4711 --kind contact_id --wait --purged --json
      streams forget --report 9f1c7d3e-5b7a-4e0c-9a57-1d2f3e4a5b6c --wait
    """
    if (subject is None) == (report_id is None):
        raise click.UsageError("name a SUBJECT or a --report ID (one of them)")
    settings = get_settings()
    report = None
    if report_id is not None:
        report = read_report(settings, report_id)
        if report is None:
            raise click.ClickException(f"no report {report_id} on {settings.reports_topic}")
    request = deletion_request(subject or "", kind, requested_by, reason, report)
    try:
        validate_deletion_request(request)  # the lane's own rule (forget/request.py)
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc), param_hint="'SUBJECT'") from exc
    consumer = receipts_consumer(settings) if wait else None
    try:
        publish_request(settings, request)
        if consumer is None:
            click.echo(json.dumps(_jsonable(request)) if as_json else f"published request {request['request_id']}")
            return
        wanted = "purged" if purged else "unsearchable"
        receipt = wait_for_receipt(consumer, request["request_id"], timeout, wanted, settings.schema_registry_url)
    finally:
        if consumer is not None:
            consumer.close()
    if receipt is None:
        raise click.ClickException(
            f"no receipt for request {request['request_id']} within {timeout:.0f}s: is `streams worker` running?"
        )
    if as_json:  # the receipt's own JSON form: what `streams receipt verify FILE` checks
        click.echo(json.dumps(Receipt.from_dict(receipt).to_json(), indent=2, ensure_ascii=False))
    else:
        for line in describe_receipt(receipt, request["requested_at"]):
            click.echo(line)
    if receipt["status"] in GIVEN_UP:
        sys.exit(1)
    if report is not None:
        missing = unaccounted(report, receipt)
        for line in missing:
            click.echo(f"not accounted for from report {report.report_id}: {line}", err=True)
        if missing:
            sys.exit(1)


def describe_receipt(receipt: dict[str, Any], requested_at: datetime) -> list[str]:
    """A receipt as lines of text, saying only what happened: a rejected or failed request ran no
    erasure, so it has no verification and no time to unsearchable; a subject nothing was indexed about
    is said to be that, with what was searched, rather than "unsearchable"."""
    head = f"request {receipt['request_id']}: "
    if receipt["status"] in GIVEN_UP:
        return [
            f"{head}{receipt['subject'] or '(no subject)'} was {receipt['status']}: nothing was searched or removed",
            f"  error: {receipt.get('error') or 'no reason given'}",
            *_sealed(receipt),
        ]
    counts = [("deleted", c) for c in receipt["removed"]] + [("redacted", c) for c in receipt.get("redacted") or []]
    found = [(label, c) for label, c in counts if c["chunks"]]
    # Receipts written before the status said so: nothing removed, scrubbed or tombstoned.
    held = found or receipt["state_records_removed"] or receipt.get("dead_letters_tombstoned")
    nothing = receipt["status"] == NOTHING_INDEXED or not held
    lines = [
        f"{head}nothing indexed about {receipt['subject']}"
        if nothing
        else f"{head}{receipt['subject']} is {receipt['status']}"
    ]
    lines.append(f"  {'searched for' if nothing else 'identifiers'}: {', '.join(receipt['identifiers'])}")
    for label, count in found:
        lines.append(
            f"  {label}: {count['index']} / {count['source']}: {count['chunks']} chunks of "
            f"{count['documents']} documents ({', '.join(count.get('document_ids') or [])})"
        )
    lines.append(f"  mention patterns used (keyed hashes): {len(receipt.get('pattern_hashes') or [])}")
    lines.append(
        f"  state records scrubbed: {receipt['state_records_removed']}, "
        f"dead letters tombstoned: {receipt['dead_letters_tombstoned']}"
    )
    v = receipt["verification"]
    lines.append(
        f"  verification (no subject filter): subject-field {v['subject_field_hits']}, BM25 {v['bm25_hits']}, "
        f"kNN {v['knn_hits']}, hybrid {v['hybrid_hits']} hits"
    )
    seconds = (receipt["unsearchable_at"] - requested_at).total_seconds()
    if nothing:
        lines.append(f"  checked {seconds:.2f}s after the request; the subject stays suppressed for future changes")
    else:
        purged = receipt["purged_at"] or "pending"
        lines.append(f"  unsearchable {seconds:.2f}s after the request; purged at {purged}")
    return lines + _sealed(receipt)


def _sealed(receipt: dict[str, Any]) -> list[str]:
    if not receipt.get("signature"):
        return ["  not signed"]
    return [
        f"  signed, #{receipt['sequence']} of chain {receipt['chain']}: "
        f"check it with `streams receipt verify {receipt['request_id']}`"
    ]
