"""The local stack as a whole: bring every server up (in parallel where they are independent),
report status, and take it down in reverse order."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from streams.auth import ensure_local_keys
from streams.forget.signing import ensure_local_signing_key
from streams.settings import Settings, SettingsError
from streams.stack.connect import Connect
from streams.stack.elasticsearch import Elasticsearch
from streams.stack.kafka import Kafka
from streams.stack.mariadb import MariaDB
from streams.stack.mediawiki import MediaWiki
from streams.stack.postgres import Postgres
from streams.stack.request_tracker import RequestTracker
from streams.stack.runner import Progress, Server, ServerFailed, StackError, open_the_way, service_user
from streams.stack.tryton import Tryton

SERVER_TYPES: tuple[type[Server], ...] = (Postgres, MariaDB, Elasticsearch, Kafka, Connect)
# The real applications, run only when settings.stack_apps names them.
APPLICATION_TYPES: dict[str, type[MediaWiki | RequestTracker | Tryton]] = {
    MediaWiki.name: MediaWiki,
    RequestTracker.name: RequestTracker,
    Tryton.name: Tryton,
}


def server_types(settings: Settings, every_application: bool = False) -> list[type[Server]]:
    applications = APPLICATION_TYPES if every_application else settings.stack_apps
    return [*SERVER_TYPES, *(APPLICATION_TYPES[name] for name in applications)]


def servers(settings: Settings, every_application: bool = False) -> dict[str, Server]:
    return {cls.name: cls(settings) for cls in server_types(settings, every_application)}


def with_dependencies(all_servers: dict[str, Server], only: Iterable[str]) -> dict[str, Server]:
    """The servers named in `only` and every server they depend on, in the stack's order."""
    wanted: set[str] = set()
    pending = list(only)
    while pending:
        name = pending.pop()
        if name not in all_servers:
            raise StackError(f"no server {name!r} in this stack (one of {', '.join(all_servers)})")
        if name not in wanted:
            wanted.add(name)
            pending.extend(all_servers[name].depends_on)
    return {name: server for name, server in all_servers.items() if name in wanted}


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


def up(settings: Settings, progress: Progress, only: Iterable[str] | None = None) -> list[str]:
    with exclusive(settings, progress):
        return _up(settings, progress, only)


def _up(settings: Settings, progress: Progress, only: Iterable[str] | None = None) -> list[str]:
    """Start every server that is not running (or only those named, with what they depend on) and wait
    until all are healthy; return the names of the servers this call started. A second call leaves
    running servers alone."""
    all_servers = servers(settings)
    if only is not None:
        all_servers = with_dependencies(all_servers, only)
    settings.stack_home.mkdir(parents=True, exist_ok=True)
    ensure_local_keys(settings)  # the worker's /search needs a credential; the tests and the demo use these
    ensure_local_signing_key(settings)  # every receipt the worker publishes is signed with it
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
        # Every application, named in the settings or not: one started before the setting changed still stops.
        for name, server in reversed(list(servers(settings, every_application=True).items())):
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
    all_servers = servers(settings)
    with ThreadPoolExecutor(max_workers=len(all_servers)) as pool:
        found = dict(zip(all_servers, pool.map(lambda s: s.status(), all_servers.values()), strict=True))
    report["servers"] = found
    applications = {
        name: server.application()
        for name, server in all_servers.items()
        if isinstance(server, MediaWiki | RequestTracker)
    }
    if applications:
        report["applications"] = applications
    report["healthy"] = all(s["healthy"] for s in found.values())
    return report


def kill(settings: Settings, name: str, progress: Progress) -> int | None:
    """SIGKILL one server (its whole process group), as a crash would: no shutdown, no flush.
    Returns the pid it killed, or None when the server was not running. `up` brings it back."""
    return servers(settings)[name].kill(progress)
