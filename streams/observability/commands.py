"""`streams freshness`: the freshness percentiles per source, from the running worker or the report topic."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
import httpx

from streams.cli import seconds_option
from streams.settings import Settings, get_settings

COLUMNS = (
    "source",
    "events",
    "p50_s",
    "p95_s",
    "p99_s",
    "max_s",
    "oldest_unindexed_age_s",
    "capture_age_s",
    "capture",
)
HEADERS = ("source", "events", "p50 s", "p95 s", "p99 s", "max s", "oldest unindexed s", "capture age s", "capture")
SNAPSHOT_COLUMNS = ("source", "snapshot_events", "snapshot_p50_s", "snapshot_p95_s", "snapshot_p99_s", "snapshot_max_s")
SNAPSHOT_HEADERS = ("source", "events", "p50 s", "p95 s", "p99 s", "max s")
SNAPSHOT_TITLE = (
    "snapshot, backfill and backlog (op=r reads, bulk changes, or committed before the worker started),"
    " not counted above:"
)


class FreshnessUnavailable(click.ClickException):
    """No figures could be read; the message says why and what to do."""


def _get_json(url: str, path: str, timeout_s: float, ok: tuple[int, ...] = (200,)) -> dict[str, Any]:
    endpoint = f"{url.rstrip('/')}{path}"
    try:
        response = httpx.get(endpoint, timeout=timeout_s)
    except httpx.TransportError as exc:
        raise FreshnessUnavailable(f"no worker answered at {endpoint} ({exc}): start it with `streams worker`") from exc
    if response.status_code not in ok:
        raise FreshnessUnavailable(f"{endpoint} answered HTTP {response.status_code}: {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


def read_worker(url: str, timeout_s: float) -> dict[str, Any]:
    """The worker's /freshness JSON: {"worker_id": ..., "sources": [SourceFigures ...]}."""
    return _get_json(url, "/freshness", timeout_s)


def read_health(url: str, timeout_s: float) -> dict[str, Any]:
    """The worker's /health: each source's capture age and verdict (ok, behind, stalled), the reasons,
    and the indexing lane's lag (it answers 503 for a stall)."""
    return _get_json(url, "/health", timeout_s, ok=(200, 503))


def with_capture_health(report: dict[str, Any], health: dict[str, Any]) -> dict[str, Any]:
    """The report with each source's capture age and verdict beside its freshness figures."""
    ages: dict[str, float] = health.get("capture_age_s", {})
    verdicts: dict[str, str] = health.get("sources", {})
    sources = [
        {**figures, "capture_age_s": ages.get(figures["source"]), "capture": verdicts.get(figures["source"])}
        for figures in report.get("sources", [])
    ]
    capture = {key: health.get(key) for key in ("status", "reasons", "lag")}
    return {**report, "sources": sources, "capture_age_s": ages, "capture": capture, "backfill": health.get("backfill")}


def backfill_line(backfill: dict[str, Any] | None) -> str | None:
    """The backfill lane's backlog in words, or None when it is empty or unknown."""
    if not backfill or not backfill.get("events"):
        return None
    line = f"backfill lane: {backfill['events']} events queued"
    if backfill.get("drain_rate_per_s"):
        line += f", draining {backfill['drain_rate_per_s']:.0f}/s, about {backfill['drain_s']:.0f} s to go"
    return line


def read_latest_report(settings: Settings, timeout_s: float) -> dict[str, Any]:
    """The newest FreshnessReport on the freshness topic (by window_end), decoded."""
    from confluent_kafka import KafkaException

    from streams.clients import TopicReadTimeout, kafka_consumer, read_to_end, unique_group, watermarks
    from streams.observability.freshness_report import decode_freshness_report

    topic = settings.freshness_topic
    consumer = kafka_consumer(settings, unique_group("streams-freshness-cli"))
    try:
        try:
            offsets = watermarks(consumer, topic, timeout_s)
        except KafkaException as exc:
            raise FreshnessUnavailable(f"Kafka at {settings.kafka_bootstrap} did not answer: {exc}") from exc
        if not offsets:
            raise FreshnessUnavailable(f"topic {topic} does not exist yet: start the worker with `streams worker`")
        last = {partition: high - 1 for partition, (low, high) in offsets.items() if high > low}
        if not last:
            raise FreshnessUnavailable(f"no freshness report on {topic} yet: is `streams worker` running?")
        try:
            reports = [
                decode_freshness_report(message.value() or b"", settings.schema_registry_url)
                for message in read_to_end(consumer, topic, last, timeout_s=timeout_s, deadline_s=timeout_s)
            ]
        except TopicReadTimeout as exc:
            raise FreshnessUnavailable(f"no freshness report could be read from {topic}: {exc}") from exc
        except KafkaException as exc:
            raise FreshnessUnavailable(f"reading {topic}: {exc}") from exc
    finally:
        consumer.close()
    return max(reports, key=lambda report: report["window_end"])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_table(
    sources: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS, headers: tuple[str, ...] = HEADERS
) -> str:
    rows = [headers, *[tuple(_cell(figures.get(column)) for column in columns) for figures in sources]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--url", default=None, help="The worker's base URL. [default: http://127.0.0.1:$STREAMS_WORKER_WEB_PORT]")
@click.option(
    "--from-topic",
    is_flag=True,
    help="Read the latest FreshnessReport from the freshness topic instead of asking the worker.",
)
@seconds_option("--timeout", "timeout_s", default=5.0, help="Seconds to wait for an answer.")
def freshness(as_json: bool, url: str | None, from_topic: bool, timeout_s: float) -> None:
    """Freshness (source commit -> searchable) per source: events, p50/p95/p99/max seconds, oldest unindexed age,
    capture age (seconds since the commit of the newest event received from the source, heartbeats
    included: it grows when capture stalls, which freshness alone cannot show) and the capture verdict:
    ok; behind (past the threshold, but the heartbeats are queued behind a backlog that drains: the
    line below the table says by how many events and about how long it takes); stalled.

    The main table counts live changes only. Snapshot reads (op=r: the initial snapshot, a repair's
    incremental snapshot) and changes committed before the worker started measure how old the rows
    were, not how fast the pipeline is: they are shown in a second table, when there are any.

    By default it asks the running worker (its recent history, up to 10,000 events per source). With
    --from-topic it shows the last published window instead, decoded from the Avro report topic.
    """
    settings = get_settings()
    if from_topic:
        report = read_latest_report(settings, timeout_s)
        title = (
            f"worker {report['worker_id']}, window {report['window_start']:%H:%M:%S} - "
            f"{report['window_end']:%H:%M:%S} UTC (from {settings.freshness_topic})"
        )
    else:
        base = url or settings.worker_url()
        report = with_capture_health(read_worker(base, timeout_s), read_health(base, timeout_s))
        title = f"worker {report.get('worker_id', '?')}, recent events (from {base}/freshness)"
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=_json_default)
        sys.stdout.write("\n")
        return
    sources = report.get("sources", [])
    click.echo(title)
    click.echo(render_table(sources))
    for reason in report.get("capture", {}).get("reasons") or []:
        click.echo(reason)
    backfill = backfill_line(report.get("backfill"))
    if backfill:
        click.echo(backfill)
    if any(figures.get("snapshot_events") for figures in sources):
        click.echo("")
        click.echo(SNAPSHOT_TITLE)
        click.echo(render_table(sources, SNAPSHOT_COLUMNS, SNAPSHOT_HEADERS))
