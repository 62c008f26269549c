"""`streams connectors watch`: keep capture flowing without a person.

Every few seconds: each connector's and task's state from Connect's REST API, whether its source's
heartbeat topic still grows (a committed heartbeat every few seconds, see connectors/*.json), and
for PostgreSQL connectors which backend holds the replication slot. heal_decisions.decide turns that
into actions; this module only observes and acts, and logs every action with its reason.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.child_process import streams_command
from streams.settings import Settings
from streams.stack import connectors
from streams.stack.heal_decisions import Action, CaptureProgress, ConnectorObservation, decide
from streams.stack.runner import StackError
from streams.topics import source_namespace

log = logging.getLogger("streams.watch")

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"


@dataclass(frozen=True)
class Watched:
    """What the watch needs to know about one connector, from its rendered config."""

    name: str
    source: str
    heartbeat_topic: str
    slot_name: str | None
    dsn: str | None


def watched_connectors(settings: Settings) -> list[Watched]:
    found = []
    for name, config in connectors.load(settings).items():
        source = config.get("topic.prefix", name)
        is_postgres = config.get("connector.class") == POSTGRES_CONNECTOR
        found.append(
            Watched(
                name=name,
                source=source,
                heartbeat_topic=f"{source}.{source_namespace(source, settings)}.{settings.heartbeat_table}",
                slot_name=config.get("slot.name", "debezium") if is_postgres else None,
                dsn=settings.dsn(source) if is_postgres else None,
            )
        )
    return found


class ConnectorWatch:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.watched = watched_connectors(settings)
        self.progress = CaptureProgress()
        # When each connector last started afresh: restarted by the watch, or by Connect coming back.
        self.last_restart: dict[str, float] = {}
        self.consumer = Consumer(
            settings.kafka_config(
                **{"group.id": "streams-connectors-watch", "enable.auto.commit": False, "log_level": 2}
            )
        )
        self._stalled: set[str] = set()
        self._no_heartbeats: set[str] = set()
        # The connectors for which each server (Connect, or Kafka for the heartbeat topic) did not answer.
        self._away: dict[str, set[str]] = {"Connect": set(), "Kafka": set()}

    def close(self) -> None:
        self.consumer.close()

    def round(self) -> list[Action]:
        """One look at every connector, and the healing it needed (already applied)."""
        now = self.clock()
        observations = [self._observe(watched, now) for watched in self.watched]
        self._log_transitions(observations)
        actions = decide(
            observations,
            now,
            self.last_restart,
            stall_s=self.settings.watch_stall_s,
            restart_backoff_s=self.settings.watch_restart_backoff_s,
        )
        for action in actions:
            log.warning("healing %s", action.describe())
            try:
                self._apply(action)
            except (StackError, psycopg.Error) as exc:
                log.error("healing %s failed: %s", action.connector, exc)
            if action.kind == "restart":
                self.last_restart[action.connector] = now
        return actions

    def _observe(self, watched: Watched, now: float) -> ConnectorObservation:
        try:
            status = connectors.connector_status(self.settings, watched.name)
        except StackError as exc:
            if watched.name not in self._away["Connect"]:
                log.info("%s: Connect not reachable (%s)", watched.name, exc)
            self._answers(watched.name, "Connect", False, now)
            status = None
        else:
            self._answers(watched.name, "Connect", True, now)
        if status is None:  # Connect away, or the connector not registered
            self.progress.blind(watched.source)
            return ConnectorObservation(watched.name, None)
        tasks = status.get("tasks", [])
        beats = self._beats(watched)
        end_offset = self._end_offset(watched.heartbeat_topic) if beats else None
        if beats:
            self._answers(watched.name, "Kafka", end_offset is not None, now)
        return ConnectorObservation(
            name=watched.name,
            connector_state=status["connector"]["state"],
            task_states={task["id"]: task["state"] for task in tasks},
            task_traces={task["id"]: task.get("trace", "") for task in tasks},
            capture_stalled_s=self.progress.observe(watched.source, end_offset, now),
            uses_replication_slot=watched.slot_name is not None,
            slot_holder_pid=self._slot_holder(watched),
        )

    def _answers(self, name: str, server: str, answered: bool, now: float) -> None:
        """Note whether `server` answered about connector `name`. When it answers again after an absence
        (Connect restarted, or the broker back, which makes Connect rejoin its group), Connect restarts
        the tasks, as fresh as after our own restart, and a fresh task can need more than stall_s to
        stream (measured: a MariaDB task 32 s from start to binlog on the loaded 2-core machine,
        restarted needlessly at 30 s): it gets the same grace before a stall counts."""
        away = self._away[server]
        if not answered:
            away.add(name)
        elif name in away:
            away.discard(name)
            log.info(
                "%s: %s answers again; the task gets %.0f s to start streaming before a stall counts",
                name,
                server,
                self.settings.watch_restart_backoff_s,
            )
            self.last_restart[name] = now

    def _beats(self, watched: Watched) -> bool:
        """Whether the live connector commits heartbeats: without them an idle source would look stalled."""
        try:
            config = connectors.connector_config(self.settings, watched.name) or {}
        except StackError:
            return False
        beats = bool(config.get("heartbeat.action.query"))
        if not beats and watched.name not in self._no_heartbeats:
            log.warning(
                "%s: its live config has no heartbeat.action.query, so a stall cannot be told from an idle source; "
                "only failures are healed (run `streams connectors register`)",
                watched.name,
            )
        (self._no_heartbeats.discard if beats else self._no_heartbeats.add)(watched.name)
        return beats

    def _end_offset(self, topic: str) -> int | None:
        """The sum of the topic's partitions' end offsets; None when Kafka cannot say."""
        try:
            metadata = self.consumer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return None
            return sum(
                self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)[1]
                for partition in metadata.partitions
            )
        except KafkaException:
            return None

    def _slot_holder(self, watched: Watched) -> int | None:
        if watched.slot_name is None or watched.dsn is None:
            return None
        try:
            with psycopg.connect(watched.dsn, connect_timeout=5, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (watched.slot_name,)
                ).fetchone()
        except psycopg.Error as exc:
            log.info("%s: cannot read replication slot %s (%s)", watched.name, watched.slot_name, exc)
            return None
        return int(row[0]) if row and row[0] is not None else None

    def _apply(self, action: Action) -> None:
        if action.kind == "terminate_slot_holder":
            watched = next(w for w in self.watched if w.name == action.connector)
            assert watched.dsn is not None and action.pid is not None
            with psycopg.connect(watched.dsn, connect_timeout=5, autocommit=True) as conn:
                # Only the slot's current holder, and only if it still is: never a random backend.
                row = conn.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND active_pid = %s",
                    (watched.slot_name, action.pid),
                ).fetchone()
            if not row or not row[0]:
                log.warning(
                    "%s: walsender %s no longer held the slot; nothing terminated", action.connector, action.pid
                )
        elif action.kind == "restart":
            connectors.restart(self.settings, action.connector, only_failed=action.only_failed)
        else:
            raise ValueError(f"unknown action {action.kind!r}")

    def _log_transitions(self, observations: list[ConnectorObservation]) -> None:
        for seen in observations:
            stalled = seen.capture_stalled_s is not None and seen.capture_stalled_s > self.settings.watch_stall_s
            if stalled and seen.name not in self._stalled:
                log.warning(
                    "%s: capture stalled for %.0f s (%s)", seen.name, seen.capture_stalled_s, seen.connector_state
                )
                self._stalled.add(seen.name)
            elif not stalled and seen.capture_stalled_s is not None and seen.name in self._stalled:
                log.info("%s: capture flows again", seen.name)
                self._stalled.discard(seen.name)


def watch(settings: Settings, stop: threading.Event | None = None, rounds: int | None = None) -> None:
    """Watch until `stop` is set (or for `rounds` rounds)."""
    stop = stop or threading.Event()
    watcher = ConnectorWatch(settings)
    names = ", ".join(f"{w.name} ({w.heartbeat_topic})" for w in watcher.watched)
    log.info(
        "watching %s every %.0f s; stalled after %.0f s without a captured event",
        names,
        settings.watch_interval_s,
        settings.watch_stall_s,
    )
    done = 0
    try:
        while not stop.is_set() and (rounds is None or done < rounds):
            watcher.round()
            done += 1
            stop.wait(settings.watch_interval_s)
    finally:
        watcher.close()


@contextmanager
def background_watch(log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`streams connectors watch` as a child process (for `make demo` and the test session), stopped on exit."""
    with streams_command(["connectors", "watch"], log_path, stop_timeout_s=15) as process:
        yield process
