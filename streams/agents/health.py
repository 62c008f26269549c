"""Capture health inside the worker: the clock that every received event advances, the
`streams_source_capture_age_seconds` gauge read from it at scrape time, and `/health`."""

from __future__ import annotations

from functools import partial
from typing import Any

from streams.app import app, settings
from streams.observability import metrics
from streams.observability.capture_health import CaptureClock, capture_health

# One per worker process, built at import (the worker's start), not with the runtime: /health must
# answer while the model is still loading, and a source silent since start is a stall too.
capture_clock = CaptureClock(settings.sources)

for _source in settings.sources:
    metrics.CAPTURE_AGE.labels(source=_source).set_function(partial(capture_clock.age_s, _source))


@app.page("/health")
async def health_page(web: Any, request: Any) -> Any:
    """200 while every source's capture age is within the threshold, 503 with the reasons otherwise."""
    health = capture_health(capture_clock.ages(), settings.capture_age_threshold_s)
    body = {"worker_id": settings.worker_id, "threshold_s": settings.capture_age_threshold_s, **health.to_json()}
    return web.json(body, status=200 if health.healthy else 503)
