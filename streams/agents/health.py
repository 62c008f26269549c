"""`/health`: capture health inside the worker, read from the worker service's capture clock, which
every received event advances (agents/service.py also binds the `streams_source_capture_age_seconds`
gauge to it), and from the indexing lane's consumer lag, which tells a backlog from a stall."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust

from streams.observability.capture_health import capture_health

if TYPE_CHECKING:
    from streams.agents.service import WorkerService


def register(app: faust.App, service: WorkerService) -> None:
    settings = service.settings

    @app.page("/health")
    async def health_page(web: Any, request: Any) -> Any:
        """200 with status "ok" while every source's capture age is within the threshold, 200 with status
        "behind" while a source's heartbeats are queued behind a draining backlog, 503 with status
        "stalled" for a stall (observability/capture_health.py); the reasons name each source."""
        health = capture_health(
            service.capture_clock.ages(), settings.capture_age_threshold_s, service.indexing_lag.current()
        )
        body = {"worker_id": settings.worker_id, "threshold_s": settings.capture_age_threshold_s, **health.to_json()}
        # Bulk work queued on the backfill lane: never a reason for 503 (live work goes first).
        backfill = service.backfill_lag.current()
        body["backfill"] = backfill.to_json() if backfill is not None else None
        return web.json(body, status=200 if health.healthy else 503)
