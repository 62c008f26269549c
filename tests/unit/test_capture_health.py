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
from streams.observability.capture_health import CaptureClock, LagHistory, capture_health
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


def test_past_the_threshold_behind_a_draining_backlog_is_behind_not_stalled() -> None:
    clock = FakeClock()
    lag = LagHistory(clock)
    lag.observe(5_000)
    clock.now = T0 + timedelta(seconds=10)
    lag.observe(4_000)  # 100 events/s
    health = capture_health({"tickets": 59.7, "wiki": 3.0}, threshold_s=20, lag=lag.current())
    assert (health.status, health.healthy) == ("behind", True)
    assert health.sources == {"tickets": "behind", "wiki": "ok"}
    (reason,) = health.reasons
    assert reason.startswith("source tickets: behind by 4000 events, about 40 s to drain")
    assert json.loads(json.dumps(health.to_json()))["lag"] == {
        "events": 4000,
        "drain_rate_per_s": 100.0,
        "drain_s": 40.0,
        "unchanged_s": 0.0,
    }


def test_one_lag_reading_is_behind_with_the_time_to_drain_unknown() -> None:
    lag = LagHistory(FakeClock())
    lag.observe(4_000)
    health = capture_health({"tickets": 30.0}, threshold_s=20, lag=lag.current())
    assert health.status == "behind"
    assert "behind by 4000 events, time to drain not known yet" in health.reasons[0]


def test_past_the_threshold_while_caught_up_is_a_stall() -> None:
    clock = FakeClock()
    lag = LagHistory(clock)
    lag.observe(4_000)
    clock.now = T0 + timedelta(seconds=10)
    lag.observe(0)
    health = capture_health({"crm": 25.0, "wiki": 3.0}, threshold_s=20, lag=lag.current())
    assert (health.status, health.healthy) == ("stalled", False)
    assert health.sources == {"crm": "stalled", "wiki": "ok"}
    assert health.reasons == [
        "source crm: capture stalled: no event captured for 25.0 s (threshold 20 s) although the worker is caught up"
    ]


def test_a_backlog_that_does_not_shrink_for_the_threshold_is_a_stall() -> None:
    clock = FakeClock()
    lag = LagHistory(clock)
    lag.observe(4_000)
    for seconds in (10, 20):
        clock.now = T0 + timedelta(seconds=seconds)
        lag.observe(4_000)
    health = capture_health({"tickets": 80.0}, threshold_s=20, lag=lag.current())
    assert health.status == "stalled"
    assert "backlog of 4000 events has not shrunk for 20 s" in health.reasons[0]
    # Growing is not shrinking either; one reading that shrinks makes it behind again.
    clock.now = T0 + timedelta(seconds=30)
    lag.observe(4_500)
    assert capture_health({"tickets": 90.0}, threshold_s=20, lag=lag.current()).status == "stalled"
    clock.now = T0 + timedelta(seconds=40)
    lag.observe(3_500)
    assert capture_health({"tickets": 100.0}, threshold_s=20, lag=lag.current()).status == "behind"


def test_a_lag_reader_gone_silent_ends_up_a_stall() -> None:
    clock = FakeClock()
    lag = LagHistory(clock)
    lag.observe(4_000)
    clock.now = T0 + timedelta(seconds=19)
    assert capture_health({"tickets": 50.0}, threshold_s=20, lag=lag.current()).status == "behind"
    clock.now = T0 + timedelta(seconds=21)  # no reading since
    assert capture_health({"tickets": 52.0}, threshold_s=20, lag=lag.current()).status == "stalled"


def test_no_lag_reading_yet_past_the_threshold_is_a_stall() -> None:
    health = capture_health({"tickets": 25.0}, threshold_s=20, lag=LagHistory(FakeClock()).current())
    assert health.status == "stalled"
    assert "not known yet" in health.reasons[0]


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

    async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
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


def test_the_indexing_lag_counts_the_path_of_a_heartbeat_not_the_deletion_lane() -> None:
    from types import SimpleNamespace

    from streams.agents.publish_freshness import indexing_lag

    settings = Settings()
    service = SimpleNamespace(settings=settings, mappings=load_mappings(PROJECT_ROOT / "connectors"))
    lag = {
        ("tickets.public.tickets", 0): 300,
        ("tickets.public.streams_heartbeat", 0): 2,
        (settings.routed_topic, 0): 1_000,
        (settings.routed_topic, 1): 500,
        (settings.deletion_topic, 0): 7,
    }
    assert indexing_lag(service, lag) == 1_802  # type: ignore[arg-type]
