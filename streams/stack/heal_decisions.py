"""What `streams connectors watch` does about what it sees: a pure function from observations to actions.

Why a connector needs healing although Connect may say RUNNING (reproduced on the local stack):
when the broker is unreachable for 3 s, Connect revokes its assignment and stops every task;
a PostgreSQL task that cannot stop within task.shutdown.graceful.timeout.ms is abandoned as an
orphan whose threads keep streaming from the replication slot. The new task instance then waits
for the orphan's JMX names (2 x 60 s) and retries the slot, which the orphan's walsender still holds
("replication slot ... is active for PID ..."), six times, and streams nothing while its state stays
RUNNING. Ending the orphan's walsender (pg_terminate_backend) releases the slot; restarting the task
makes a fresh one take it.

So the watch judges a connector by capture (the heartbeats every source commits every few seconds),
not by its state alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

RUNNING = "RUNNING"
FAILED = "FAILED"
# Deliberate operator states: the watch never overrides them.
DELIBERATE = frozenset({"PAUSED", "STOPPED"})


@dataclass(frozen=True)
class ConnectorObservation:
    """One look at one connector. `None` means "could not be observed", never "fine"."""

    name: str
    connector_state: str | None  # None: not registered, or Connect unreachable
    task_states: Mapping[int, str] = field(default_factory=dict)
    task_traces: Mapping[int, str] = field(default_factory=dict)
    capture_stalled_s: float | None = None  # seconds since its source's heartbeat topic last grew
    uses_replication_slot: bool = False
    slot_holder_pid: int | None = None  # the walsender holding the connector's slot, if any


@dataclass(frozen=True)
class Action:
    kind: str  # "terminate_slot_holder" or "restart"
    connector: str
    reason: str
    pid: int | None = None
    only_failed: bool = True

    def describe(self) -> str:
        if self.kind == "terminate_slot_holder":
            return (
                f"{self.connector}: terminating walsender pid {self.pid} holding its replication slot ({self.reason})"
            )
        scope = "failed tasks" if self.only_failed else "connector and all tasks"
        return f"{self.connector}: restarting {scope} ({self.reason})"


def decide(
    observations: Iterable[ConnectorObservation],
    now: float,
    last_restart: Mapping[str, float],
    *,
    stall_s: float,
    restart_backoff_s: float,
) -> list[Action]:
    """The healing actions for this round, in the order they must run (a slot is freed before the
    restart that needs it). A connector restarted less than `restart_backoff_s` ago is left alone:
    a fresh PostgreSQL task can need a minute before it streams."""
    actions: list[Action] = []
    for seen in observations:
        if seen.connector_state is None or seen.connector_state in DELIBERATE:
            continue
        if now - last_restart.get(seen.name, float("-inf")) < restart_backoff_s:
            continue
        reason = _failure(seen) or _stall(seen, stall_s)
        if reason is None:
            continue
        failed_only = _failure(seen) is not None and seen.connector_state != FAILED
        if seen.uses_replication_slot and seen.slot_holder_pid is not None:
            # A failed task holds no slot, and a stalled one holds it without streaming: either way
            # the holder is a session that no live task uses (the orphan of an abandoned task).
            actions.append(Action("terminate_slot_holder", seen.name, reason, pid=seen.slot_holder_pid))
            failed_only = False
        actions.append(Action("restart", seen.name, reason, only_failed=failed_only))
    return actions


def _failure(seen: ConnectorObservation) -> str | None:
    if seen.connector_state == FAILED:
        return "connector FAILED"
    failed = sorted(task for task, state in seen.task_states.items() if state == FAILED)
    if not failed:
        return None
    trace = seen.task_traces.get(failed[0], "")
    first_line = trace.strip().splitlines()[0] if trace.strip() else "no trace"
    return f"task {failed[0]} FAILED: {first_line[:200]}"


def _stall(seen: ConnectorObservation, stall_s: float) -> str | None:
    if seen.capture_stalled_s is None or seen.capture_stalled_s <= stall_s:
        return None
    states = ", ".join(f"task {t} {s}" for t, s in sorted(seen.task_states.items())) or "no tasks"
    return (
        f"no event captured for {seen.capture_stalled_s:.0f} s (> {stall_s:g} s) while {seen.connector_state}, {states}"
    )


class CaptureProgress:
    """Seconds since each source's heartbeat topic last grew, from successive end offsets.

    Starting to watch, or seeing again after a blind spell (Kafka or Connect unreachable), starts
    the count afresh: a stall is only declared on what was actually watched, so a connector that
    Connect is still restarting after an outage gets the full `stall_s` before anyone touches it."""

    def __init__(self) -> None:
        self._end: dict[str, int] = {}
        self._grew_at: dict[str, float] = {}

    def observe(self, source: str, end_offset: int | None, now: float) -> float | None:
        if end_offset is None:
            self.blind(source)
            return None
        if source not in self._end or end_offset != self._end[source]:
            self._end[source] = end_offset
            self._grew_at[source] = now
        return now - self._grew_at[source]

    def blind(self, source: str) -> None:
        self._end.pop(source, None)
        self._grew_at.pop(source, None)
