"""Who used the machine's CPU during a scenario: seconds of CPU per part of the stack, read from /proc.

Each stack server runs as its own process group (its pid file names the leader), so its CPU is the
sum over that group; the worker is recognised by its command line. Linux only: elsewhere the
figures are empty, and the scenarios still run.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

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


def _is_worker(pid: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"worker" in argv and any(part.endswith((b"streams", b"streams.cli")) for part in argv)


def cpu_seconds(settings: Settings) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each stack server, the worker, and everything else."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    groups = _process_groups(settings)
    totals: dict[str, float] = defaultdict(float)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        process_group, user, system = int(fields[2]), int(fields[11]), int(fields[12])
        role = groups.get(process_group) or ("worker" if _is_worker(entry.name) else "other")
        totals[role] += (user + system) / ticks
    return dict(totals)


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part used between two readings (a process that ended in between is lost)."""
    return {role: round(max(after.get(role, 0.0) - before.get(role, 0.0), 0.0), 1) for role in sorted(after)}
