"""The connectors' watch heals the orphaned-task stall (stack/heal_decisions.py) on the real stack: a
stale session holds a PostgreSQL connector's replication slot (as the orphan of an abandoned task does after a broker
restart), so the task cannot stream while Connect may still say RUNNING. The session's background
watch (conftest.connectors_watch) must end that session and restart the connector, and capture must
resume, with no manual step."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from urllib.parse import urlsplit

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.settings import Settings
from streams.stack import connectors
from streams.stack.packages import POSTGRES_BIN
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.integration

CONNECTOR = "crm"
SLOT = "streams_crm"
HEARTBEAT_TOPIC = "crm.public.streams_heartbeat"


def slot_holder(settings: Settings) -> tuple[int, str] | None:
    with psycopg.connect(settings.dsn("crm"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT s.active_pid, coalesce(a.application_name, '') FROM pg_replication_slots s "
            "LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = %s AND s.active_pid IS NOT NULL",
            (SLOT,),
        ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def terminate(settings: Settings, pid: int) -> None:
    with psycopg.connect(settings.dsn("crm"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def heartbeat_end(settings: Settings) -> int:
    consumer = Consumer(settings.kafka_config(**{"group.id": "streams-test-watch", "log_level": 2}))
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(HEARTBEAT_TOPIC, p), timeout=10)[1] for p in (0, 1))
    finally:
        consumer.close()


def steal_slot(settings: Settings) -> subprocess.Popen[bytes]:
    """Take the slot from the connector's walsender with a session of our own, frozen as soon as it holds
    the slot. A frozen pg_recvlogical confirms nothing, so the slot keeps every change for Debezium (a
    running one would confirm what it reads, and the connector could never resume from its offset)."""
    url = urlsplit(settings.dsn("crm"))
    command = [
        str(POSTGRES_BIN / "pg_recvlogical"),
        "--no-loop",
        "--start",
        "--slot",
        SLOT,
        "-f",
        "/dev/null",
        "--status-interval",
        "3600",
        "--fsync-interval",
        "0",
        "-o",
        "proto_version=1",
        "-o",
        f"publication_names={SLOT}",
        "-d",
        f"host={url.hostname} port={url.port} user={url.username} dbname={url.path.lstrip('/')}",
    ]
    env = {"PGPASSWORD": url.password or ""}
    for _ in range(20):
        holder = slot_holder(settings)
        if holder is not None and holder[1] != "pg_recvlogical":
            terminate(settings, holder[0])
        thief = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_until(
            lambda: (h := slot_holder(settings)) is not None and h[1] == "pg_recvlogical", timeout=5, interval=0.02
        ):
            os.kill(thief.pid, signal.SIGSTOP)
            return thief
        thief.kill()
        thief.wait()
    raise AssertionError("could not take the replication slot away from the connector")


def test_the_watch_ends_a_stale_slot_holder_and_capture_resumes(local_stack: Settings) -> None:
    settings = local_stack
    thief = steal_slot(settings)
    try:
        stolen_by = slot_holder(settings)
        assert stolen_by is not None and stolen_by[1] == "pg_recvlogical"
        stalled_end = heartbeat_end(settings)
        started = time.monotonic()

        def healed() -> bool:
            holder = slot_holder(settings)
            taken_back = holder is not None and holder[1] != "pg_recvlogical"
            return taken_back and heartbeat_end(settings) > stalled_end + 1

        assert wait_until(healed, timeout=240, interval=2), (
            f"capture of {CONNECTOR} did not resume within 240 s; slot holder {slot_holder(settings)}"
        )
        print(f"capture resumed {time.monotonic() - started:.0f} s after the slot was taken")
        watch_log = (settings.stack_home / "watch-tests.log").read_text()
        assert f"terminating walsender pid {stolen_by[0]}" in watch_log
        status = connectors.connector_status(settings, CONNECTOR)
        assert status is not None and status["connector"]["state"] == "RUNNING"
        assert [task["state"] for task in status["tasks"]] == ["RUNNING"]
    finally:
        if thief.poll() is None:
            thief.kill()  # SIGKILL, never SIGCONT: a resumed session would confirm what it read
        thief.wait()
