"""The bench checks Debezium before it starts a worker: without a running connector no change reaches
the index, and every scenario would wait for its own timeout instead of saying why."""

from __future__ import annotations

from typing import Any

import pytest

from streams.bench import commands
from streams.settings import Settings
from streams.stack import connectors
from streams.stack.runner import StackError


def _running(*task_states: str) -> dict[str, Any]:
    return {"connector": {"state": "RUNNING"}, "tasks": [{"id": i, "state": s} for i, s in enumerate(task_states)]}


def test_every_connector_running_is_no_problem() -> None:
    assert connectors.not_running({"wiki": _running("RUNNING"), "crm": _running("RUNNING")}) == []


def test_a_missing_a_failed_and_a_taskless_connector_are_each_named() -> None:
    report = {
        "wiki": None,
        "crm": _running("FAILED"),
        "tickets": {"connector": {"state": "PAUSED"}, "tasks": []},
        "rt": _running("RUNNING"),
    }
    assert connectors.not_running(report) == [
        "wiki: not registered",
        "crm: RUNNING (0=FAILED)",
        "tickets: PAUSED (no tasks)",
    ]


@pytest.mark.parametrize(
    "answer",
    [{"wiki": None}, StackError("Kafka Connect at http://127.0.0.1:18083 is not reachable")],
    ids=["unregistered", "connect-down"],
)
def test_the_stack_scenarios_stop_at_once_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any] | Exception
) -> None:
    def status_all(_: Settings) -> dict[str, Any]:
        if isinstance(answer, Exception):
            raise answer
        return answer

    def no_worker(*_: Any, **__: Any) -> Any:
        raise AssertionError("no worker may start without the connectors")

    monkeypatch.setattr(connectors, "status_all", status_all)
    monkeypatch.setattr("streams.bench.probes.running_worker", no_worker)
    monkeypatch.setattr("streams.clients.elasticsearch_client", lambda _: object())
    results: dict[str, dict[str, Any]] = {}
    sizes = {"duration_s": 1.0, "docs": 1, "edits": 1, "forget_requests": 1, "backlog": 1}
    outcome = commands._run_stack_scenarios(Settings(), ["steady", "backfill"], sizes, 1.0, True, results)
    assert outcome == (None, None, False)
    assert set(results) == {"steady", "backfill"}
    assert "streams connectors register" in results["backfill"]["error"]
    expected = "wiki: not registered" if isinstance(answer, dict) else "not reachable"
    assert expected in results["steady"]["error"]


def test_a_sigterm_unwinds_the_bench_so_the_worker_it_started_is_stopped(tmp_path: Any) -> None:
    # Without the handler, SIGTERM ends Python at once and no `finally` (the worker's stop) runs.
    import subprocess
    import sys

    marker = tmp_path / "unwound"
    program = (
        "import os, signal\n"
        "from streams.bench.commands import _exit_on_sigterm\n"
        "signal.signal(signal.SIGTERM, _exit_on_sigterm)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    signal.pause()\n"
        "finally:\n"
        f"    open({str(marker)!r}, 'w').write('stopped')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60, check=False)
    assert done.returncode == 143
    assert marker.read_text() == "stopped"
