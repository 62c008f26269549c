"""Capture age and /health's verdict, and heartbeats consumed without becoming documents."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from streams.agents.process_changes import ChangeProcessor
from streams.agents.route_changes import ChangeDecoder
from streams.agents.write_changes import WriteResult
from streams.observability.capture_health import CaptureClock, capture_health
from streams.observability.freshness import FreshnessWindow
from streams.pipeline.document_mapping import load_mappings
from streams.records import PartChange, RawMessage
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import heartbeat_topics

CAPTURED = Path(__file__).parent / "fixtures" / "debezium"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_capture_age_counts_from_the_newest_commit_received() -> None:
    clock = FakeClock()
    capture = CaptureClock(["wiki", "tickets"], clock)
    clock.now = T0 + timedelta(seconds=7)
    capture.received("wiki", T0 + timedelta(seconds=5))
    assert capture.age_s("wiki") == 2.0
    # A late, older event (a replay) does not make the source look staler than it is.
    capture.received("wiki", T0)
    assert capture.age_s("wiki") == 2.0
    clock.now = T0 + timedelta(seconds=50)
    assert capture.age_s("wiki") == 45.0


def test_only_the_configured_sources_are_reported() -> None:
    clock = FakeClock()
    capture = CaptureClock(["wiki"], clock)
    capture.received("kb", T0)
    assert capture.ages() == {"wiki": 0.0}
    assert capture.age_s("kb") == float("inf")


def test_a_source_silent_since_start_ages_from_the_start() -> None:
    clock = FakeClock()
    capture = CaptureClock(["crm"], clock)
    clock.now = T0 + timedelta(seconds=40)
    assert capture.ages() == {"crm": 40.0}
    # Its first event may be older than the start (a backlog): then that commit time counts.
    capture.received("crm", T0 - timedelta(seconds=100))
    assert capture.age_s("crm") == 140.0


def test_health_fails_past_the_threshold_and_names_the_source() -> None:
    healthy = capture_health({"wiki": 3.0, "tickets": 29.9}, threshold_s=30)
    assert healthy.healthy and healthy.reasons == []
    stalled = capture_health({"wiki": 3.0, "tickets": 31.0, "crm": 95.5}, threshold_s=30)
    assert not stalled.healthy
    assert [r.split(":")[0] for r in stalled.reasons] == ["source crm", "source tickets"]
    assert "95.5 s" in stalled.reasons[0]
    assert json.loads(json.dumps(stalled.to_json()))["healthy"] is False


def test_heartbeat_topics_follow_the_debezium_names() -> None:
    topics = heartbeat_topics(load_mappings(PROJECT_ROOT / "connectors"), Settings())
    assert sorted(topics) == [
        "crm.public.streams_heartbeat",
        "tickets.public.streams_heartbeat",
        "wiki.wiki.streams_heartbeat",
    ]


def test_every_connector_commits_heartbeats_into_its_heartbeat_table() -> None:
    for name in ("wiki", "tickets", "crm"):
        config = json.loads((PROJECT_ROOT / "connectors" / f"{name}.json").read_text())["config"]
        assert "streams_heartbeat" in config["heartbeat.action.query"], name
        assert int(config["heartbeat.interval.ms"]) <= 10_000, name
        schema = (PROJECT_ROOT / "streams" / "sources" / f"{name}.sql").read_text()
        assert "CREATE TABLE IF NOT EXISTS streams_heartbeat" in schema, name


class RecordingWriter:
    def __init__(self) -> None:
        self.written: list[list[PartChange]] = []

    async def write(self, changes: list[PartChange]) -> WriteResult:
        self.written.append(changes)
        return WriteResult(applied=list(changes))


def _message(path: Path) -> RawMessage:
    fixture: dict[str, Any] = json.loads(path.read_text())
    return RawMessage(
        fixture["topic"],
        fixture["partition"],
        fixture["offset"],
        json.dumps(fixture["key"]).encode(),
        json.dumps(fixture["value"]).encode(),
    )


def test_heartbeats_advance_capture_age_and_are_never_indexed() -> None:
    dead: list[object] = []

    async def send_dead_letter(origin: object, record: dict[str, object]) -> None:
        dead.append(origin)

    writer = RecordingWriter()
    clock = FakeClock()
    capture = CaptureClock(["wiki", "tickets", "crm"], clock)
    processor = ChangeProcessor(
        writer,
        send_dead_letter,  # type: ignore[arg-type]
        FreshnessWindow(("wiki", "tickets", "crm")),
        capture=capture,
    )
    heartbeats = [
        _message(CAPTURED / "wiki.wiki.streams_heartbeat" / "update.json"),
        _message(CAPTURED / "tickets.public.streams_heartbeat" / "update.json"),
    ]
    note = _message(CAPTURED / "crm.public.notes" / "create.json")
    decoder = ChangeDecoder(load_mappings(PROJECT_ROOT / "connectors"))
    routed = [decoder.decode(message) for message in [*heartbeats, note]]
    asyncio.run(processor.process([record for record in routed if record is not None]))
    assert dead == []
    assert [[c.table for c in batch] for batch in writer.written] == [["notes"]]
    for message in [*heartbeats, note]:
        source = message.topic.split(".")[0]
        commit = datetime.fromtimestamp(json.loads(message.value or b"")["source"]["ts_ms"] / 1000, UTC)
        clock.now = commit + timedelta(seconds=1)
        assert abs(capture.age_s(source) - 1.0) < 0.01, source


def test_prometheus_alerts_on_capture_age() -> None:
    observability = PROJECT_ROOT / "observability"
    prometheus = yaml.safe_load((observability / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = yaml.safe_load((observability / "compose.yml").read_text())
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in compose["services"]["prometheus"]["volumes"]
    rules = yaml.safe_load((observability / "alerts.yml").read_text())["groups"][0]["rules"]
    stalled = next(rule for rule in rules if rule["alert"] == "StreamsCaptureStalled")
    assert stalled["expr"].startswith("streams_source_capture_age_seconds >")
