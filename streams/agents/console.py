"""The web console at `/`: one page an operator opens in a browser, served by the worker itself.

The page (console_assets/: static HTML, CSS and one vanilla script, no build step and nothing
fetched from outside the worker) reads the worker's JSON endpoints every few seconds: /health,
/freshness, and the two added here:
- /console/state: consumer lag per lane (as last read, every freshness_interval_s), how fast each
  lane drains, and the dead letters this worker sent, per stage. Open, like /metrics: no figure
  names anyone.
- /console/receipts: the latest deletion receipts, from the receipts topic. Receipts name the people
  they forget, so without an operator credential (the search API's, streams/auth.py) only request
  ids, statuses, times and counts are shown; an invalid credential is a 401.
The search box calls /search with the key the user pastes, which the page keeps in the browser's
sessionStorage only.

`/` still answers faust's `{"status": "OK"}` to a client that asks for JSON alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust

from streams.auth import Caller, Unauthorized
from streams.observability import metrics
from streams.observability.consumer_lag import LagReading
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.agents.service import WorkerService

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("console_assets")
RECEIPTS_SHOWN = 20
# The page loads only what the worker serves, and no inline script can run in it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ASSET_TYPES = {"console.js": "text/javascript", "console.css": "text/css"}


def wants_json(accept: str) -> bool:
    """A client that accepts JSON and not HTML (a probe, a script) gets faust's status document."""
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return "application/json" in kinds and "text/html" not in kinds


def lane_of(topic: str, settings: Settings) -> str:
    """The lane a consumed topic feeds: Debezium's topics are routed, then indexed by document."""
    if topic == settings.routed_topic:
        return "indexing"
    if topic == settings.backfill_topic:
        return "backfill"
    if topic == settings.deletion_topic:
        return "deletion"
    return "routing"


LANES = ("routing", "indexing", "backfill", "deletion")


def lane_topics(lag: Mapping[tuple[str, int], int], settings: Settings) -> dict[str, dict[str, int]]:
    by_lane: dict[str, dict[str, int]] = {lane: {} for lane in LANES}
    for (topic, _), messages in lag.items():
        topics = by_lane[lane_of(topic, settings)]
        topics[topic] = topics.get(topic, 0) + messages
    return by_lane


def lanes(current: LagReading | None, previous: LagReading | None, settings: Settings) -> list[dict[str, Any]]:
    """Messages not yet processed per lane, and per topic within it; from two readings, how many the
    lane processes per second net of what arrives, and so about how long it takes to drain (None while
    it does not shrink)."""
    now = lane_topics(current.messages if current is not None else {}, settings)
    before = lane_topics(previous.messages, settings) if previous is not None else None
    elapsed_s = (current.read_at - previous.read_at).total_seconds() if current and previous else 0.0
    result = []
    for lane, topics in now.items():
        messages = sum(topics.values())
        drain_per_s = drain_s = None
        if before is not None and elapsed_s > 0:
            drain_per_s = (sum(before[lane].values()) - messages) / elapsed_s
            if messages == 0:
                drain_s = 0.0
            elif drain_per_s > 0:
                drain_s = messages / drain_per_s
        result.append(
            {
                "lane": lane,
                "messages": messages,
                "drain_per_s": None if drain_per_s is None else round(drain_per_s, 3),
                "drain_s": None if drain_s is None else round(drain_s, 1),
                "topics": dict(sorted(topics.items())),
            }
        )
    return result


def dead_letter_counts() -> dict[str, int]:
    """Events this worker process sent to the dead-letter topic since it started, per stage."""
    counts: dict[str, int] = {}
    for family in metrics.DEAD_LETTERS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["stage"]] = int(sample.value)
    return dict(sorted(counts.items()))


def console_state(service: WorkerService) -> dict[str, Any]:
    settings = service.settings
    reading = service.consumer_lag
    return {
        "worker_id": settings.worker_id,
        "lag_read_at": reading.read_at.isoformat() if reading is not None else None,
        "lanes": lanes(reading, service.previous_consumer_lag, settings),
        "dead_letters": dead_letter_counts(),
        "dead_letter_topic": settings.dead_letter_topic,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None


def receipt_view(record: Mapping[str, Any], detailed: bool) -> dict[str, Any]:
    """What the console shows of a receipt: never the subject, its identifiers or the error (which can
    quote the subject) unless `detailed` (an operator's credential)."""
    removed = record.get("removed") or []
    view: dict[str, Any] = {
        "request_id": record["request_id"],
        "status": record["status"],
        "received_at": _iso(record.get("received_at")),
        "unsearchable_at": _iso(record.get("unsearchable_at")),
        "purged_at": _iso(record.get("purged_at")),
        "chunks_removed": sum(int(count["chunks"]) for count in removed),
        "documents_removed": sum(int(count["documents"]) for count in removed),
    }
    if detailed:
        view["subject"] = record.get("subject")
        view["subject_kind"] = record.get("subject_kind")
        view["error"] = record.get("error")
    return view


def register(app: faust.App, service: WorkerService) -> None:
    index_html = (ASSETS / "index.html").read_text(encoding="utf-8")
    assets = {name: (ASSETS / name).read_bytes() for name in ASSET_TYPES}

    @app.page("/")
    async def console_page(web: Any, request: Any) -> Any:
        if wants_json(request.headers.get("Accept", "")):
            return web.json({"status": "OK"})
        return web.html(index_html, headers=dict(SECURITY_HEADERS))

    @app.page("/console/console.js")
    async def console_script(web: Any, request: Any) -> Any:
        return web.bytes(assets["console.js"], content_type=ASSET_TYPES["console.js"], headers=dict(SECURITY_HEADERS))

    @app.page("/console/console.css")
    async def console_style(web: Any, request: Any) -> Any:
        return web.bytes(assets["console.css"], content_type=ASSET_TYPES["console.css"], headers=dict(SECURITY_HEADERS))

    @app.page("/console/state")
    async def state_page(web: Any, request: Any) -> Any:
        return web.json(console_state(service))

    @app.page("/console/receipts")
    async def receipts_page(web: Any, request: Any) -> Any:
        caller: Caller | None = None
        authorization = request.headers.get("Authorization")
        if authorization:
            try:
                caller = service.search_authenticator().authenticate(authorization)
            except Unauthorized as exc:
                return web.json(exc.to_json(), status=401, headers={"WWW-Authenticate": exc.challenge()})
        detailed = caller is not None and caller.operator
        try:
            records = await asyncio.get_running_loop().run_in_executor(None, service.latest_receipts, RECEIPTS_SHOWN)
        except Exception as exc:  # Kafka away: the panel says so, the rest of the page still works
            log.warning("console: receipts not read: %s", exc)
            return web.json({"error": f"receipts not read from {service.settings.receipts_topic}: {exc}"}, status=503)
        return web.json(
            {
                "detailed": detailed,
                "topic": service.settings.receipts_topic,
                "receipts": [receipt_view(record, detailed) for record in records],
            }
        )
