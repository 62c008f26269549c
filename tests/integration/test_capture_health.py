"""A stalled connector shows on /metrics and /health, whatever Connect says, and clears once capture
flows again. The stall is made for real: the crm connector is paused through Connect's REST API, so
its heartbeats stop being committed and captured."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from streams.settings import Settings
from streams.stack import connectors
from tests.integration.helpers import metrics_value, wait_until

pytestmark = pytest.mark.integration

PAUSED = "crm"


def health(settings: Settings) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{settings.worker_url()}/health", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _connect(settings: Settings, method: str, path: str) -> None:
    request = urllib.request.Request(f"{settings.connect_url}{path}", method=method)
    with urllib.request.urlopen(request, timeout=30):
        pass


def _running(settings: Settings, name: str) -> bool:
    status = connectors.connector_status(settings, name)
    return bool(
        status
        and status["connector"]["state"] == "RUNNING"
        and status["tasks"]
        and all(task["state"] == "RUNNING" for task in status["tasks"])
    )


def _steady(settings: Settings) -> bool:
    """Every source's capture age well under the threshold: the worker is not busy with a backlog (a
    long batch delays every source's heartbeats alike, which would hide which source stalled)."""
    code, body = health(settings)
    return code == 200 and all(age < settings.capture_age_threshold_s / 2 for age in body["capture_age_s"].values())


@pytest.fixture
def paused_connector(worker: Settings) -> Iterator[Settings]:
    """The crm connector paused for the test, and RUNNING again afterwards whatever happened."""
    assert wait_until(lambda: _steady(worker), timeout=300, interval=1), f"capture never steady: {health(worker)}"
    _connect(worker, "PUT", f"/connectors/{PAUSED}/pause")
    try:
        yield worker
    finally:
        _connect(worker, "PUT", f"/connectors/{PAUSED}/resume")
        assert wait_until(lambda: _running(worker, PAUSED), timeout=60), f"{PAUSED} did not resume"


def test_health_is_200_while_capture_flows(worker: Settings) -> None:
    code, body = wait_until(lambda: (r := health(worker))[0] == 200 and r, timeout=60) or health(worker)
    assert code == 200, body
    assert body["reasons"] == []
    assert set(body["capture_age_s"]) == set(worker.sources)
    assert all(age < worker.capture_age_threshold_s for age in body["capture_age_s"].values()), body


def test_a_paused_connector_turns_health_503_and_back(paused_connector: Settings) -> None:
    settings = paused_connector
    paused_at = time.monotonic()

    def paused() -> bool:
        status = connectors.connector_status(settings, PAUSED)
        return status is not None and status["connector"]["state"] == "PAUSED"

    assert wait_until(paused, timeout=30), f"{PAUSED} did not pause"

    # Visible within 30 s of the pause: capture_age_threshold_s after the last heartbeat received.
    def stalled() -> tuple[int, dict[str, Any]] | None:
        code, body = health(settings)
        return (code, body) if code == 503 else None

    seen = wait_until(stalled, timeout=30, interval=1)
    assert seen, f"/health still answers 200 {time.monotonic() - paused_at:.0f} s after {PAUSED} was paused"
    _, body = seen
    assert any(reason.startswith(f"source {PAUSED}:") for reason in body["reasons"]), body
    assert body["capture_age_s"][PAUSED] > settings.capture_age_threshold_s
    # The other sources keep flowing: only the stalled one is named.
    assert all(not reason.startswith(("source wiki", "source tickets")) for reason in body["reasons"]), body
    age = metrics_value("streams_source_capture_age_seconds", {"source": PAUSED})
    assert age > settings.capture_age_threshold_s

    _connect(settings, "PUT", f"/connectors/{PAUSED}/resume")
    assert wait_until(lambda: _running(settings, PAUSED), timeout=60)
    recovered = wait_until(lambda: health(settings)[0] == 200, timeout=60, interval=1)
    assert recovered, f"/health did not recover after resuming {PAUSED}: {health(settings)}"
    assert metrics_value("streams_source_capture_age_seconds", {"source": PAUSED}) < settings.capture_age_threshold_s
