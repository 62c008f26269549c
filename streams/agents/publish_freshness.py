"""Every `freshness_interval_s`: close the freshness window, publish a FreshnessReport, refresh the lag gauge."""

from __future__ import annotations

import asyncio
import logging

from streams.agents.runtime import get_runtime
from streams.app import app, freshness_topic, mappings, settings
from streams.observability.consumer_lag import ConsumerLagReader, record_lag
from streams.observability.freshness_report import (
    encode_freshness_report,
    freshness_report_record,
    report_key,
)
from streams.topics import consumed_topics

log = logging.getLogger(__name__)

_lag_reader: ConsumerLagReader | None = None


@app.timer(interval=settings.freshness_interval_s)  # type: ignore[untyped-decorator]
async def publish_freshness() -> None:
    # An exception would end faust's timer for good: log it, and report again next interval.
    try:
        await publish_report()
    except Exception:
        log.exception("freshness report not published; retrying in %.0f s", settings.freshness_interval_s)
    await _update_consumer_lag()


async def publish_report() -> None:
    runtime = await get_runtime(settings)
    start, end, figures = runtime.freshness.close_window()
    record = freshness_report_record(settings.worker_id, start, end, figures)
    value = encode_freshness_report(record, settings.schema_registry_url)
    delivery = await freshness_topic.send(key=report_key(settings.worker_id), value=value)
    await delivery  # the report is on the topic (acks=all) before the next window closes


async def _update_consumer_lag() -> None:
    """Lag is best effort: a broker hiccup must not stop freshness reports."""
    global _lag_reader
    topics = consumed_topics(mappings, settings)
    try:
        if _lag_reader is None:
            _lag_reader = ConsumerLagReader(settings, app.conf.id)
        lag = await asyncio.get_running_loop().run_in_executor(None, _lag_reader.lag, topics)
    except Exception as exc:  # confluent-kafka raises KafkaException and others on a broker outage
        log.warning("consumer lag not updated: %s", exc)
        return
    record_lag(lag)
