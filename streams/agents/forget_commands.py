"""`streams forget`: publish a right-to-be-forgotten request, and optionally wait for its receipt."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click
from confluent_kafka import Consumer, KafkaException

from streams import avro
from streams.clients import consumer_at_end, kafka_producer
from streams.forget.request import DeletionRequest
from streams.records import SUBJECT_KINDS
from streams.settings import Settings, get_settings


def deletion_request(subject: str, kind: str, requested_by: str, reason: str) -> dict[str, Any]:
    """A new request, as the record the deletion topic takes."""
    return DeletionRequest(str(uuid.uuid4()), subject, kind, requested_by, datetime.now(UTC), reason).to_dict()


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
    status: str = "unsearchable",
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
        if status == "unsearchable" or receipt["status"] == status:
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
@click.argument("subject")
@click.option(
    "--kind", type=click.Choice(SUBJECT_KINDS), default="email", show_default=True, help="What SUBJECT identifies."
)
@click.option("--requested-by", default="compliance", show_default=True, help="Who asked.")
@click.option("--reason", default="GDPR Art. 17 request", show_default=True, help="Why.")
@click.option("--wait", is_flag=True, help="Wait for the receipt and print it.")
@click.option("--purged", is_flag=True, help="With --wait: wait for the receipt of the physical purge too.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the receipt.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def forget(
    subject: str, kind: str, requested_by: str, reason: str, wait: bool, purged: bool, timeout: float, as_json: bool
) -> None:
    """Publish a deletion request for SUBJECT (an email by default) to the deletion topic.

    The worker makes every chunk about the subject unsearchable, records the subject in the
    suppression ledger so that no replay or re-snapshot indexes it again, purges the deleted
    documents physically, and publishes a receipt.
    """
    settings = get_settings()
    request = deletion_request(subject, kind, requested_by, reason)
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
    if as_json:
        click.echo(json.dumps(_jsonable(receipt), indent=2))
        return
    seconds = (receipt["unsearchable_at"] - request["requested_at"]).total_seconds()
    click.echo(f"request {receipt['request_id']}: {receipt['subject']} is {receipt['status']}")
    click.echo(f"  identifiers: {', '.join(receipt['identifiers'])}")
    if receipt.get("error"):
        click.echo(f"  error: {receipt['error']}")
    for label, counts in (("deleted", receipt["removed"]), ("redacted", receipt.get("redacted") or [])):
        for count in counts:
            if count["chunks"]:
                click.echo(
                    f"  {label}: {count['index']} / {count['source']}: {count['chunks']} chunks of "
                    f"{count['documents']} documents ({', '.join(count.get('document_ids') or [])})"
                )
    click.echo(f"  mention patterns used (keyed hashes): {len(receipt.get('pattern_hashes') or [])}")
    click.echo(
        f"  state records scrubbed: {receipt['state_records_removed']}, "
        f"dead letters tombstoned: {receipt['dead_letters_tombstoned']}"
    )
    v = receipt["verification"]
    click.echo(
        f"  verification (no subject filter): subject-field {v['subject_field_hits']}, BM25 {v['bm25_hits']}, "
        f"kNN {v['knn_hits']}, hybrid {v['hybrid_hits']} hits"
    )
    click.echo(f"  unsearchable {seconds:.2f}s after the request; purged at {receipt['purged_at'] or 'pending'}")
