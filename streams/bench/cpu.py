"""Who used the machine's CPU during a scenario: seconds of CPU per part of the stack, read with psutil.

Each stack server runs as its own process group (its pid file names the leader), so its CPU is the
sum over that group; the worker is recognised by its command line.
"""

from __future__ import annotations

import os
from collections import defaultdict

import psutil

from streams.settings import Settings

SERVERS = ("elasticsearch", "kafka", "connect", "postgres", "mariadb")


def _process_groups(settings: Settings) -> dict[int, str]:
    groups: dict[int, str] = {}
    for name in SERVERS:
        pid_file = settings.stack_home / name / f"{name}.pid"
        try:
            groups[int(pid_file.read_text().strip())] = name
        except (OSError, ValueError):
            continue
    return groups


def is_worker(argv: list[str]) -> bool:
    """`streams worker` or `python -m streams.cli worker`, from a process's command line."""
    return "worker" in argv and any(part.endswith(("streams", "streams.cli")) for part in argv)


def cpu_seconds(settings: Settings) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each stack server, the worker, and everything else."""
    groups = _process_groups(settings)
    totals: dict[str, float] = defaultdict(float)
    for process in psutil.process_iter(["cmdline", "cpu_times"]):
        times = process.info["cpu_times"]
        try:
            process_group = os.getpgid(process.pid)
        except OSError:  # the process ended meanwhile
            continue
        if times is None:  # not ours to read
            continue
        role = groups.get(process_group) or ("worker" if is_worker(process.info["cmdline"] or []) else "other")
        totals[role] += times.user + times.system
    return dict(totals)


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part used between two readings (a process that ended in between is lost)."""
    return {role: round(max(after.get(role, 0.0) - before.get(role, 0.0), 0.0), 1) for role in sorted(after)}


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (the one serving /search), found by the port rather
    than by its command line: other stacks' workers on the same machine must not be charged."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            return connection.pid
    return None


def process_cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) one process has used so far; 0 when it is gone or unknown."""
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system
