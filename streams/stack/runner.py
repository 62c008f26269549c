"""Process supervision for the local stack: one detached process per server, a pid file, health
checks, and a stop that signals exactly the process group this stack started."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import signal
import socket
import stat
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from streams.errors import StreamsError
from streams.polling import poll
from streams.settings import Settings

Progress = Callable[[str], None]

SERVICE_USER = "streams"  # Elasticsearch, PostgreSQL and MariaDB refuse to run as root


class StackError(StreamsError):
    """The local stack could not be provisioned, started or stopped."""

    stage = "stack"


class ServerFailed(StackError):
    def __init__(self, server: str, reason: str, log_tail: str = "") -> None:
        self.server = server
        self.failure = reason  # not `reason`: StreamsError.reason is the one-line dead-letter text
        self.log_tail = log_tail
        text = f"{server}: {reason}"
        if log_tail:
            text += f"\n--- last lines of {server}'s log ---\n{log_tail}"
        super().__init__(text)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def run(
    cmd: Sequence[str],
    *,
    what: str,
    user: str | None = None,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 600,
) -> str:
    """Run a provisioning command to completion; raise ServerFailed with its output when it fails."""
    try:
        done = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            env=dict(env) if env else None,
            cwd=cwd,
            input=input,
            timeout=timeout,
            **_as_user(user),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerFailed(what, f"{' '.join(cmd)} failed: {exc}") from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise ServerFailed(what, f"{' '.join(cmd)} exited with {done.returncode}", output)
    return done.stdout


def service_user() -> str | None:
    """The unprivileged OS user the database servers run as; None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


def open_the_way(path: Path, user: str | None, progress: Progress) -> None:
    """Let `user` enter every directory on the way to `path`.

    The database servers and Elasticsearch run as an unprivileged user (they refuse root). A checkout
    under a private directory (`mktemp -d` makes mode 700) would make them fail later, deep in initdb,
    with only "Permission denied" to go on. A directory this process owns gets others' traverse bit
    (o+x: enter, not list), said in the progress; one it does not own is a StackError naming it.
    """
    if user is None or os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    _open_the_way(path, entry.pw_uid, entry.pw_gid, progress)


def _open_the_way(path: Path, uid: int, gid: int, progress: Progress) -> None:
    for directory in reversed([path.resolve(), *path.resolve().parents]):
        mode = directory.stat()
        if mode.st_uid == uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid == gid:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if allowed:
            continue
        if mode.st_uid != os.geteuid():
            raise StackError(
                f"the servers' user (uid {uid}) cannot enter {directory} (mode {stat.filemode(mode.st_mode)}),"
                f" on the way to the stack's data in {path}, and it is not ours to change: `chmod o+x"
                f" {directory}`, or set STREAMS_STACK_HOME to a directory that user can reach"
            )
        directory.chmod(stat.S_IMODE(mode.st_mode) | stat.S_IXOTH)
        progress(f"{directory}: others may now enter it (o+x, not list it): the servers' user must reach {path}")


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _as_user(user: str | None) -> dict[str, Any]:
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def wait_ended(pid: int, timeout_s: float | None) -> bool:
    """Whether `pid` ended within `timeout_s` (None: wait as long as it takes).

    Polled, not `psutil.Process.wait`: that waits for a process that is not our child to leave the
    process table, and where nothing reaps it (a container whose init does not) a zombie never does.
    """
    return poll(lambda: not pid_alive(pid), timeout_s, 0.2)


def pid_cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


class Server(ABC):
    """One server of the local stack, run as a detached process group under stack_home/<name>."""

    name: str
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout_s: float = 30.0
    start_timeout_s: float = 120.0
    depends_on: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.stack_home / self.name
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.pid_file = self.home / f"{self.name}.pid"
        self.log_file = self.logs_dir / f"{self.name}.out"
        self.user: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # What each server defines.
    @abstractmethod
    def prepare(self, progress: Progress) -> None:
        """Write config and initialise data (idempotent); downloads are already cached."""

    @abstractmethod
    def command(self) -> list[str]: ...

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @abstractmethod
    def healthy(self) -> bool: ...

    def after_healthy(self, progress: Progress) -> None:
        """Idempotent setup that needs the running server (roles, databases, schemas)."""
        return None

    @abstractmethod
    def endpoint(self) -> str: ...

    # Supervision.
    def pid(self) -> int | None:
        """The pid from the pid file, when that process is alive and is this stack's server."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and str(self.home) in pid_cmdline(pid):
            return pid
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, progress: Progress) -> bool:
        """Start the server unless it already runs; True when this call started it."""
        if self.running():
            progress(f"{self.name}: already running (pid {self.pid()})")
            return False
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.prepare(progress)
        chown_tree(self.home, self.user)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            try:
                self._process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.environment(),
                    cwd=self.home,
                    start_new_session=True,
                    **_as_user(self.user),
                )
            except OSError as exc:
                raise ServerFailed(self.name, f"could not start: {exc}") from exc
        self.pid_file.write_text(f"{self._process.pid}\n")
        progress(f"{self.name}: started (pid {self._process.pid}), log {self.log_file}")
        return True

    def wait_healthy(self, progress: Progress, timeout_s: float | None = None) -> None:
        def healthy_or_failed() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise ServerFailed(
                    self.name, f"exited with {self._process.returncode} while starting", tail(self.log_file)
                )
            if self._process is None and not self.running():
                raise ServerFailed(self.name, "is not running", tail(self.log_file))
            return self.healthy()

        if not poll(healthy_or_failed, timeout_s or self.start_timeout_s, 0.3):
            raise ServerFailed(
                self.name, f"not healthy after {timeout_s or self.start_timeout_s:.0f}s", tail(self.log_file)
            )
        progress(f"{self.name}: healthy at {self.endpoint()}")

    def stop(self, progress: Progress) -> bool:
        """Stop the process group this stack started: signal, then SIGKILL after stop_timeout_s."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        progress(f"{self.name}: stopping (pid {pid})")
        self._signal(pid, self.stop_signal)
        if not wait_ended(pid, self.stop_timeout_s):
            progress(f"{self.name}: still running after {self.stop_timeout_s:.0f}s, sending SIGKILL")
            self._signal(pid, signal.SIGKILL)
            wait_ended(pid, None)
        self.pid_file.unlink(missing_ok=True)
        progress(f"{self.name}: stopped")
        return True

    def kill(self, progress: Progress) -> int | None:
        """SIGKILL the server's whole process group, as a crash would: no shutdown, no flush. Returns the
        pid it killed, or None when the server was not running; `start` brings it back."""
        pid = self.pid()
        if pid is None:
            return None
        progress(f"{self.name}: kill -9 (pid {pid})")
        self._signal(pid, signal.SIGKILL)
        poll(lambda: self.pid() is None, 30, 0.1)
        return pid

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        # The server runs in its own session, so its process group id is its pid: this reaches the
        # server and anything it spawned (Elasticsearch's launcher spawns the JVM), and nothing else.
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": pid is not None,
            "healthy": pid is not None and self.healthy(),
            "pid": pid,
            "endpoint": self.endpoint(),
            "log": str(self.log_file),
        }


class Printer:
    """Thread-safe progress lines, stamped with seconds since the start."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self._echo = echo
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._echo(f"[{time.monotonic() - self._t0:5.1f}s] {line}")

    def elapsed(self) -> float:
        return time.monotonic() - self._t0


def write_private(path: Path, text: str) -> None:
    """Write a file that holds passwords: created readable by the owner alone, before any byte is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(text)


def generated_passwords(path: Path, names: Sequence[str]) -> dict[str, str]:
    """The passwords kept in `path` (a private JSON file), generating and keeping any that are missing."""
    found: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in names if name not in found]
    if missing:
        found.update({name: secrets.token_urlsafe(18) for name in missing})
        write_private(path, json.dumps(found, indent=2) + "\n")
    return found
