"""The watch's decisions: what it restarts, what it terminates, and what it leaves alone."""

from __future__ import annotations

from streams.stack.heal_decisions import Action, CaptureProgress, ConnectorObservation, decide

STALL_S = 30.0
BACKOFF_S = 60.0


def _decide(*observations: ConnectorObservation, last_restart: dict[str, float] | None = None) -> list[Action]:
    return decide(observations, 1000.0, last_restart or {}, stall_s=STALL_S, restart_backoff_s=BACKOFF_S)


def running(name: str = "tickets", stalled_s: float | None = 3.0, holder: int | None = 4242) -> ConnectorObservation:
    return ConnectorObservation(
        name, "RUNNING", {0: "RUNNING"}, capture_stalled_s=stalled_s, uses_replication_slot=True, slot_holder_pid=holder
    )


def test_a_healthy_connector_is_left_alone() -> None:
    assert _decide(running(), running("wiki", holder=None)) == []


def test_a_running_but_stalled_postgres_connector_loses_its_slot_holder_then_restarts() -> None:
    actions = _decide(running(stalled_s=95.0))
    assert [(a.kind, a.pid, a.only_failed) for a in actions] == [
        ("terminate_slot_holder", 4242, True),
        ("restart", None, False),
    ]
    assert "no event captured for 95 s" in actions[1].reason and "RUNNING" in actions[1].reason


def test_a_stall_at_the_threshold_is_not_yet_a_stall() -> None:
    assert _decide(running(stalled_s=STALL_S)) == []


def test_a_stalled_binlog_connector_is_restarted_without_terminating_anything() -> None:
    wiki = ConnectorObservation("wiki", "RUNNING", {0: "RUNNING"}, capture_stalled_s=45.0)
    assert [(a.kind, a.only_failed) for a in _decide(wiki)] == [("restart", False)]


def test_a_failed_task_is_restarted_alone_with_its_trace_as_reason() -> None:
    wiki = ConnectorObservation(
        "wiki", "RUNNING", {0: "FAILED"}, {0: "org.apache.kafka.connect.errors.ConnectException: boom\n\tat x"}, 2.0
    )
    [action] = _decide(wiki)
    assert (action.kind, action.only_failed) == ("restart", True)
    assert action.reason == "task 0 FAILED: org.apache.kafka.connect.errors.ConnectException: boom"


def test_a_failed_postgres_task_frees_the_slot_a_stale_session_holds() -> None:
    failed = ConnectorObservation(
        "crm",
        "RUNNING",
        {0: "FAILED"},
        {0: 'replication slot "streams_crm" is active for PID 10033'},
        uses_replication_slot=True,
        slot_holder_pid=10033,
    )
    assert [(a.kind, a.pid) for a in _decide(failed)] == [("terminate_slot_holder", 10033), ("restart", None)]


def test_paused_stopped_unregistered_and_unobserved_connectors_are_left_alone() -> None:
    paused = ConnectorObservation(
        "crm", "PAUSED", {0: "PAUSED"}, capture_stalled_s=500.0, uses_replication_slot=True, slot_holder_pid=1
    )
    stopped = ConnectorObservation("tickets", "STOPPED", {}, capture_stalled_s=500.0)
    unknown = ConnectorObservation("wiki", None)
    blind = running(stalled_s=None)
    assert _decide(paused, stopped, unknown, blind) == []


def test_a_recent_restart_is_given_time_before_the_next() -> None:
    assert _decide(running(stalled_s=200.0), last_restart={"tickets": 1000.0 - BACKOFF_S + 1}) == []
    assert len(_decide(running(stalled_s=200.0), last_restart={"tickets": 1000.0 - BACKOFF_S})) == 2


def test_capture_progress_counts_from_the_last_growth() -> None:
    progress = CaptureProgress()
    assert progress.observe("tickets", 10, now=0.0) == 0.0
    assert progress.observe("tickets", 10, now=20.0) == 20.0
    assert progress.observe("tickets", 11, now=25.0) == 0.0
    assert progress.observe("tickets", 11, now=61.0) == 36.0


def test_capture_progress_starts_afresh_after_a_blind_spell() -> None:
    progress = CaptureProgress()
    progress.observe("crm", 5, now=0.0)
    assert progress.observe("crm", None, now=40.0) is None  # Kafka unreachable
    assert progress.observe("crm", 5, now=50.0) == 0.0
    assert progress.observe("crm", 5, now=85.0) == 35.0
