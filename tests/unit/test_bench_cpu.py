"""CPU accounting for the bench: a process group named by a server's pid file is charged to that server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from streams.bench.cpu import cpu_seconds, cpu_used
from streams.polling import poll
from streams.settings import Settings

BUSY = "while True: pass"


def test_a_busy_process_group_is_charged_to_the_server_its_pid_file_names(tmp_path: Path) -> None:
    # Its own process group, as the stack starts each server.
    busy = subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True)
    try:
        (tmp_path / "kafka").mkdir()
        (tmp_path / "kafka" / "kafka.pid").write_text(f"{busy.pid}\n")
        settings = Settings(stack_home=tmp_path)
        before = cpu_seconds(settings)

        def charged() -> dict[str, float] | None:
            used = cpu_used(before, cpu_seconds(settings))
            return used if used.get("kafka", 0.0) >= 0.3 else None

        # However loaded the machine, the spinning process gets a share, and it is charged to kafka.
        used = poll(charged, 60, 0.05)
    finally:
        busy.kill()
        busy.wait()
    assert used, "the spinning process group was never charged 0.3 s of CPU to kafka"
    assert used.get("elasticsearch", 0.0) == 0.0


def test_cpu_used_is_the_difference_per_role_and_never_negative() -> None:
    before = {"elasticsearch": 10.0, "worker": 5.0, "other": 3.0}
    after = {"elasticsearch": 12.5, "worker": 9.0, "other": 2.0}
    assert cpu_used(before, after) == {"elasticsearch": 2.5, "other": 0.0, "worker": 4.0}


def test_the_process_listening_on_a_port_is_found_and_charged() -> None:
    import socket

    from streams.bench.cpu import listening_pid, process_cpu_seconds

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        assert listening_pid(port) == os.getpid()
    finally:
        server.close()
    assert listening_pid(port) is None
    before = process_cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert process_cpu_seconds(os.getpid()) - before >= 0.15
    assert process_cpu_seconds(None) == 0.0
