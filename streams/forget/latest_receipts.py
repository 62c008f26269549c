"""The latest deletion receipts, read back from the receipts topic (the record every worker publishes
to, so one reader sees the receipts of every worker), for the web console.

A request gets several receipts under its request id (unsearchable, then purged): the latest one
counts. Only the tail of each partition is read, so the cost does not grow with the topic.
"""

from __future__ import annotations

from typing import Any

from streams import avro
from streams.clients import kafka_consumer, read_to_end, unique_group, watermarks
from streams.errors import DecodeError
from streams.settings import Settings

READ_DEADLINE_S = 5.0


def latest_receipts(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """At most `limit` receipts, the latest per request, most recently received first."""
    topic = settings.receipts_topic
    consumer = kafka_consumer(settings, unique_group("streams-console"))
    try:
        start = {partition: max(low, high - limit) for partition, (low, high) in watermarks(consumer, topic).items()}
        latest: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        for message in read_to_end(consumer, topic, start, deadline_s=READ_DEADLINE_S):
            value = message.value()
            if value is None:
                continue
            try:
                record = avro.decode("deletion_receipt", value, settings.schema_registry_url)
            except DecodeError:
                continue  # not a receipt this project wrote: nothing to show
            position = (message.partition() or 0, message.offset() or 0)
            request_id = str(record["request_id"])
            if request_id not in latest or latest[request_id][0] < position:
                latest[request_id] = (position, record)
    finally:
        consumer.close()
    records = [record for _, record in latest.values()]
    records.sort(key=lambda record: record["received_at"], reverse=True)
    return records[:limit]
