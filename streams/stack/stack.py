"""The local stack as a whole: bring every server up (in parallel where they are independent),
report status, and take it down in reverse order."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from streams.auth import ensure_local_keys
from streams.settings import Settings, SettingsError
from streams.stack.connect import Connect
from streams.stack.elasticsearch import Elasticsearch
from streams.stack.kafka import Kafka
from streams.stack.mariadb import MariaDB
from streams.stack.postgres import Postgres
from streams.stack.runner import Progress, Server, ServerFailed, StackError, open_the_way, service_user

SERVER_TYPES: tuple[type[Server], ...] = (Postgres, MariaDB, Elasticsearch, Kafka, Connect)


def servers(settings: Settings) -> dict[str, Server]:
    return {cls.name: cls(settings) for cls in SERVER_TYPES}


@contextmanager
def exclusive(settings: Settings, progress: Progress) -> Iterator[None]:
    """One `up` or `down` at a time per stack_home: two concurrent `up`s would start servers twice."""
    settings.stack_home.mkdir(parents=True, exist_ok=True)
    with (settings.stack_home / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another `streams stack up/down` to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(settings: Settings, progress: Progress) -> list[str]:
    with exclusive(settings, progress):
        return _up(settings, progress)


def _up(settings: Settings, progress: Progress) -> list[str]:
    """Start every server that is not running and wait until all are healthy; return the names of
    the servers this call started. A second call leaves running servers alone."""
    all_servers = servers(settings)
    settings.stack_home.mkdir(parents=True, exist_ok=True)
    ensure_local_keys(settings)  # the worker's /search needs a credential; the tests and the demo use these
    open_the_way(settings.stack_home, service_user(), progress)
    healthy = {name: threading.Event() for name in all_servers}
    failed = threading.Event()
    started: list[str] = []

    def bring_up(server: Server) -> None:
        for dependency in server.depends_on:
            while not healthy[dependency].wait(0.2):
                if failed.is_set():
                    raise StackError(f"{server.name}: not started, {dependency} failed")
        try:
            if server.start(progress):
                started.append(server.name)
            server.wait_healthy(progress)
            server.after_healthy(progress)
        except BaseException:
            failed.set()
            raise
        healthy[server.name].set()

    with ThreadPoolExecutor(max_workers=len(all_servers)) as pool:
        futures = {name: pool.submit(bring_up, server) for name, server in all_servers.items()}
    errors = [f.exception() for f in futures.values() if f.exception() is not None]
    primary = [e for e in errors if isinstance(e, ServerFailed)] or errors
    if primary:
        if len(primary) > 1:
            raise StackError("\n\n".join(str(e) for e in primary))
        raise primary[0]  # type: ignore[misc]
    return started


def down(
    settings: Settings, progress: Progress, only: list[str] | None = None, stop_timeout_s: float | None = None
) -> list[str]:
    """Stop (in reverse start order) the servers this stack started, by their pid files."""
    stopped = []
    with exclusive(settings, progress):
        for name, server in reversed(list(servers(settings).items())):
            if stop_timeout_s is not None:
                server.stop_timeout_s = stop_timeout_s
            if (only is None or name in only) and server.stop(progress):
                stopped.append(name)
    return stopped


def source_dsns(settings: Settings) -> dict[str, str | None]:
    """Each configured source's DSN, redacted; None for a source whose DSN is not set."""
    found: dict[str, str | None] = {}
    for source in settings.sources:
        try:
            found[source] = settings.redacted_dsn(source)
        except SettingsError:
            found[source] = None
    return found


def status(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {
        "kafka_bootstrap": settings.kafka_bootstrap,
        "connect_url": settings.connect_url,
        "elasticsearch_url": settings.elasticsearch_url,
        # Passwords redacted: the report is printed and may be pasted into an issue.
        "source_dsns": source_dsns(settings),
        "stack_home": str(settings.stack_home),
        "servers": {},
    }
    with ThreadPoolExecutor(max_workers=len(SERVER_TYPES)) as pool:
        found = dict(
            zip(
                [cls.name for cls in SERVER_TYPES],
                pool.map(lambda s: s.status(), servers(settings).values()),
                strict=True,
            )
        )
    report["servers"] = found
    report["healthy"] = all(s["healthy"] for s in found.values())
    return report


def kill(settings: Settings, name: str, progress: Progress) -> int | None:
    """SIGKILL one server (its whole process group), as a crash would: no shutdown, no flush.
    Returns the pid it killed, or None when the server was not running. `up` brings it back."""
    server = servers(settings)[name]
    pid = server.pid()
    if pid is None:
        return None
    progress(f"{name}: kill -9 (pid {pid})")
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while server.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return pid
