"""Every `freshness_interval_s`: close the freshness window, publish a FreshnessReport, refresh the lag gauge."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faust

from streams.observability.consumer_lag import LagReading, record_lag
from streams.observability.freshness_report import (
    encode_freshness_report,
    freshness_report_record,
    report_key,
)
from streams.topics import change_topics, consumed_topics, heartbeat_topics

if TYPE_CHECKING:
    from streams.agents.service import WorkerService

log = logging.getLogger(__name__)


def register(app: faust.App, service: WorkerService) -> None:
    settings = service.settings
    lagging = consumed_topics(service.mappings, settings)  # read from the connector definitions once

    @app.timer(interval=settings.freshness_interval_s, name=f"{__name__}.publish_freshness")  # type: ignore[untyped-decorator]
    async def publish_freshness() -> None:
        # An exception would end faust's timer for good: log it, and report again next interval.
        try:
            await publish_report(service)
        except Exception:
            log.exception("freshness report not published; retrying in %.0f s", settings.freshness_interval_s)
        await update_consumer_lag(service, lagging)


async def publish_report(service: WorkerService) -> None:
    settings = service.settings
    runtime = await service.runtime()
    start, end, figures = runtime.freshness.close_window()
    record = freshness_report_record(settings.worker_id, start, end, figures)
    value = encode_freshness_report(record, settings.schema_registry_url)
    delivery = await service.topics.freshness.send(key=report_key(settings.worker_id), value=value)
    await delivery  # the report is on the topic (acks=all) before the next window closes


async def update_consumer_lag(service: WorkerService, topics: list[str]) -> None:
    """Lag is best effort: a broker hiccup must not stop freshness reports."""

    def read() -> dict[tuple[str, int], int]:
        return service.lag_reader().lag(topics)

    try:
        lag = await asyncio.get_running_loop().run_in_executor(None, read)
    except Exception as exc:  # confluent-kafka raises KafkaException and others on a broker outage
        log.warning("consumer lag not updated: %s", exc)
        return
    record_lag(lag)
    service.previous_consumer_lag, service.consumer_lag = service.consumer_lag, LagReading(datetime.now(UTC), lag)
    service.indexing_lag.observe(indexing_lag(service, lag))
    service.backfill_lag.observe(backfill_lag(service, lag))


def indexing_lag(service: WorkerService, lag: dict[tuple[str, int], int]) -> int:
    """The events queued on the path a heartbeat takes (its change topic, then every partition of the
    routed topic): the deletion lane's backlog holds no heartbeat back."""
    settings = service.settings
    lane = {*change_topics(service.mappings, settings), *heartbeat_topics(service.mappings, settings)}
    lane.add(settings.routed_topic)
    return sum(messages for (topic, _), messages in lag.items() if topic in lane)


def backfill_lag(service: WorkerService, lag: dict[tuple[str, int], int]) -> int:
    """The events queued on the backfill lane's topic (bulk work, agents/lanes.py)."""
    return sum(messages for (topic, _), messages in lag.items() if topic == service.settings.backfill_topic)
