"""`/health`: capture health inside the worker, read from the worker service's capture clock, which
every received event advances (agents/service.py also binds the `streams_source_capture_age_seconds`
gauge to it)."""

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
        """200 while every source's capture age is within the threshold, 503 with the reasons otherwise."""
        health = capture_health(service.capture_clock.ages(), settings.capture_age_threshold_s)
        body = {"worker_id": settings.worker_id, "threshold_s": settings.capture_age_threshold_s, **health.to_json()}
        return web.json(body, status=200 if health.healthy else 503)
