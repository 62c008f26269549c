"""After Kafka Connect itself was down, or the broker, the watch gives the tasks Connect restarts then
the same time to start streaming as after one of its own restarts, instead of restarting a task about
to stream."""

from __future__ import annotations

from typing import Any

import pytest

from streams.settings import Settings
from streams.stack import connectors
from streams.stack.heal_decisions import Action
from streams.stack.runner import StackError
from streams.stack.watch_connectors import ConnectorWatch


@pytest.mark.parametrize("away", ["Connect", "broker"])
def test_a_server_back_from_a_restart_gives_the_tasks_the_restart_grace(
    monkeypatch: pytest.MonkeyPatch, away: str
) -> None:
    settings = Settings(watch_stall_s=30.0, watch_restart_backoff_s=60.0)
    now = [0.0]
    up = [False]
    watch = ConnectorWatch(settings, clock=lambda: now[0])
    applied: list[Action] = []

    def connector_status(_: Settings, name: str) -> dict[str, Any]:
        if away == "Connect" and not up[0]:
            raise StackError("Kafka Connect is not reachable")
        return {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}

    def end_offset(_: str) -> int | None:  # the heartbeat topic never grows once it can be read
        return None if away == "broker" and not up[0] else 7

    monkeypatch.setattr(connectors, "connector_status", connector_status)
    monkeypatch.setattr(watch, "_beats", lambda _: True)
    monkeypatch.setattr(watch, "_end_offset", end_offset)
    monkeypatch.setattr(watch, "_slot_holder", lambda _: None)
    monkeypatch.setattr(watch, "_apply", applied.append)
    try:
        assert watch.round() == []  # the server is down: capture cannot be seen, nothing done
        now[0], up[0] = 10.0, True
        assert watch.round() == []  # back: capture counted afresh
        now[0] = 45.0  # 35 s without a heartbeat (> stall_s), but only 35 s since the server came back
        assert watch.round() == [], f"a task Connect has just restarted after the {away}'s return was restarted"
        now[0] = 71.0  # past the grace and still nothing captured: a real stall
        actions = watch.round()
        assert {a.connector for a in actions} == {w.name for w in watch.watched}
        assert all(a.kind == "restart" and not a.only_failed for a in actions)
    finally:
        watch.close()
