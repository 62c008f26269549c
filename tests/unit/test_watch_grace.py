"""After Kafka Connect itself was down, the watch gives the tasks it restarts the same time to start
streaming as after one of its own restarts, instead of restarting a task about to stream."""

from __future__ import annotations

from typing import Any

import pytest

from streams.settings import Settings
from streams.stack import connectors
from streams.stack.heal_decisions import Action
from streams.stack.runner import StackError
from streams.stack.watch_connectors import ConnectorWatch


def test_a_connect_restart_gets_the_restart_grace_before_a_stall_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(watch_stall_s=30.0, watch_restart_backoff_s=60.0)
    now = [0.0]
    connect_up = [False]
    watch = ConnectorWatch(settings, clock=lambda: now[0])
    applied: list[Action] = []

    def connector_status(_: Settings, name: str) -> dict[str, Any]:
        if not connect_up[0]:
            raise StackError("Kafka Connect is not reachable")
        return {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}

    monkeypatch.setattr(connectors, "connector_status", connector_status)
    monkeypatch.setattr(watch, "_beats", lambda _: True)
    monkeypatch.setattr(watch, "_end_offset", lambda _: 7)  # the heartbeat topic never grows
    monkeypatch.setattr(watch, "_slot_holder", lambda _: None)
    monkeypatch.setattr(watch, "_apply", applied.append)
    try:
        assert watch.round() == []  # Connect down: nothing observed, nothing done
        now[0], connect_up[0] = 10.0, True
        assert watch.round() == []  # back: capture counted afresh
        now[0] = 45.0  # 35 s without a heartbeat (> stall_s), but only 35 s since Connect came back
        assert watch.round() == [], "a task Connect has just restarted was restarted before it could stream"
        now[0] = 71.0  # past the grace and still nothing captured: a real stall
        actions = watch.round()
        assert {a.connector for a in actions} == {w.name for w in watch.watched}
        assert all(a.kind == "restart" and not a.only_failed for a in actions)
    finally:
        watch.close()


def test_a_broker_restart_gets_the_restart_grace_before_a_stall_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(watch_stall_s=30.0, watch_restart_backoff_s=60.0)
    now = [0.0]
    broker_up = [False]
    watch = ConnectorWatch(settings, clock=lambda: now[0])
    applied: list[Action] = []

    def connector_status(_: Settings, name: str) -> dict[str, Any]:  # Connect itself stays up throughout
        return {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}

    monkeypatch.setattr(connectors, "connector_status", connector_status)
    monkeypatch.setattr(watch, "_beats", lambda _: True)
    monkeypatch.setattr(watch, "_end_offset", lambda _: 7 if broker_up[0] else None)  # never grows once back
    monkeypatch.setattr(watch, "_slot_holder", lambda _: None)
    monkeypatch.setattr(watch, "_apply", applied.append)
    try:
        assert watch.round() == []  # the broker is down: capture cannot be seen, nothing done
        now[0], broker_up[0] = 10.0, True
        assert watch.round() == []  # back: counted afresh
        now[0] = 45.0  # 35 s without a heartbeat (> stall_s), but only 35 s since the broker came back
        assert watch.round() == [], "a task Connect is restarting after the broker's return was restarted"
        now[0] = 71.0  # past the grace and still nothing captured: a real stall
        actions = watch.round()
        assert {a.connector for a in actions} == {w.name for w in watch.watched}
        assert all(a.kind == "restart" and not a.only_failed for a in actions)
    finally:
        watch.close()
