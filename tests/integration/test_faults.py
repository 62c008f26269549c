"""The fault suite: during a stream of real changes across the three sources, kill -9 the
worker (several times), Kafka Connect and the broker, and take Elasticsearch down for 60 s. Afterwards,
with no manual step, `streams verify` finds no new drift and every touched document's newest text is
searchable and no older text is.

Sizes: the default (CI, part of `make test`) is about 3,000 changes with one of each fault;
STREAMS_FAULTS=full runs 20,000 changes with 10 worker kills (one right after a deletion request).
A JSON report (changes, faults with their catch-up times, longest capture stall, verify and content
results) goes to bench-results/faults-<size>.json.

The stack is left as found: every server up, every connector RUNNING, a worker answering.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.settings import PROJECT_ROOT, Settings
from streams.sources import edits
from streams.stack import connectors, stack
from tests.integration.conftest import start_detached_worker
from tests.integration.fault_stream import ChangeStream, check_content, wait_for
from tests.integration.helpers import es_client, found_documents, unique, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@dataclass(frozen=True)
class Size:
    name: str
    changes: int
    rate_per_s: float
    worker_kills: int
    kill_mid_deletion: bool
    timeout_s: int


SIZES = {
    "ci": Size("ci", changes=3_000, rate_per_s=12.0, worker_kills=1, kill_mid_deletion=False, timeout_s=1500),
    "full": Size("full", changes=20_000, rate_per_s=15.0, worker_kills=10, kill_mid_deletion=True, timeout_s=3600),
}
SIZE = SIZES[os.environ.get("STREAMS_FAULTS", "ci")]
ES_DOWN_S = 60.0
CONVERGE_TIMEOUT_S = 600.0


def _progress(line: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {line}", flush=True)


# -- the worker ---------------------------------------------------------------------------------


def worker_pids() -> list[int]:
    """`streams worker` processes of this checkout (cwd is the project root), found in /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if "worker" in words and "streams.cli" in words and Path(cwd).resolve() == PROJECT_ROOT:
            pids.append(int(entry.name))
    return pids


def kill_worker() -> None:
    pids = worker_pids()
    assert pids, "no running `streams worker` of this checkout to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not set(worker_pids()) & set(pids), timeout=30)


def start_worker(settings: Settings) -> None:
    start_detached_worker(settings, "worker-faults.log")


def health(settings: Settings) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{settings.worker_url()}/health", timeout=3) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
    except (OSError, ValueError):
        return None


# -- measuring ----------------------------------------------------------------------------------


class StallMonitor:
    """The longest capture age /health reported per source while the suite ran."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.longest: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StallMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            body = health(self.settings)
            for source, age in (body or {}).get("capture_age_s", {}).items():
                self.longest[source] = max(self.longest.get(source, 0.0), float(age))


def catch_up_s(settings: Settings, ticket_id: int, since: float, timeout: float = 600.0) -> float | None:
    """Seconds from `since` until a change committed now is searchable: the pipeline has caught up."""
    es = es_client(settings)
    token = unique("zc")
    edits.set_ticket_description(ticket_id, f"catch-up probe {token}")
    found = wait_until(lambda: f"tickets/ticket/{ticket_id}" in found_documents(es, token), timeout=timeout)
    return round(time.monotonic() - since, 1) if found else None


@dataclass
class Fault:
    kind: str
    at_change: int
    down_s: float = 0.0
    catch_up_s: float | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Run:
    settings: Settings
    stream: ChangeStream
    probe_ticket: int
    faults: list[Fault] = field(default_factory=list)

    def inject(self, kind: str, action: Callable[[], str]) -> None:
        _progress(f"fault {kind} at change {self.stream.done}")
        fault = Fault(kind, self.stream.done)
        started = time.monotonic()
        fault.note = action()
        fault.down_s = round(time.monotonic() - started, 1)
        fault.catch_up_s = catch_up_s(self.settings, self.probe_ticket, started)
        _progress(f"fault {kind}: back after {fault.down_s} s, caught up {fault.catch_up_s} s after the fault")
        self.faults.append(fault)


# -- the faults ---------------------------------------------------------------------------------


def worker_kill(settings: Settings) -> Callable[[], str]:
    def action() -> str:
        kill_worker()
        start_worker(settings)
        return "kill -9 during the stream (mid-batch: the worker is always busy), restarted at once"

    return action


def worker_kill_mid_deletion(settings: Settings, forgotten_tokens: list[str]) -> Callable[[], str]:
    def action() -> str:
        from streams.agents.forget_commands import deletion_request, publish_request

        email = f"{unique('forget')}@example.com"
        token = unique("zg")
        contact = edits.add_contact("Forget", "Me", email, ["sales"])
        edits.add_note(contact, email, f"about the person to forget {token}")
        forgotten_tokens.append(token)
        time.sleep(3)
        publish_request(settings, deletion_request(email, "email", "fault-suite", "right to be forgotten (faults)"))
        kill_worker()
        start_worker(settings)
        return f"kill -9 right after publishing a deletion request for {email}"

    return action


def server_kill(settings: Settings, name: str, down_s: float = 0.0) -> Callable[[], str]:
    def action() -> str:
        pid = stack.kill(settings, name, _progress)
        assert pid is not None, f"{name} was not running"
        if down_s:
            time.sleep(down_s)
        stack.up(settings, _progress)
        return f"kill -9 pid {pid}" + (f", kept down {down_s:.0f} s" if down_s else "") + ", then `stack up`"

    return action


# -- the suite ----------------------------------------------------------------------------------


def _verify() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "verify", "--json", "--recheck", "10", "--limit", "1000000"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert done.stdout, f"streams verify printed nothing: {done.stderr[-2000:]}"
    return dict(json.loads(done.stdout))


def _issues(report: dict[str, Any]) -> set[tuple[str, str]]:
    categories = ("missing", "stale", "extra", "resurrected")
    return {(c, i["document_id"]) for s in report["sources"] for c in categories for i in s[c]}


@pytest.mark.timeout(SIZE.timeout_s)
def test_the_index_ends_in_the_sources_state_after_every_fault(worker: Settings) -> None:
    settings = worker
    report: dict[str, Any] = {"size": SIZE.name, "started_at": datetime.now(UTC).isoformat()}
    before = _verify()  # drift left by earlier tests or other users is not this suite's to explain
    probe_ticket = edits.add_ticket("Fault suite probe", "probe", "fault.probe@example.com", ["support"])
    stream = ChangeStream(settings, SIZE.changes, SIZE.rate_per_s)
    run = Run(settings, stream, probe_ticket)
    plan: list[tuple[float, str, Callable[[], str]]] = [
        (0.10 + 0.05 * i, "worker kill -9", worker_kill(settings)) for i in range(SIZE.worker_kills)
    ]
    forgotten_tokens: list[str] = []
    if SIZE.kill_mid_deletion:
        plan.append((0.12, "worker kill -9 mid deletion request", worker_kill_mid_deletion(settings, forgotten_tokens)))
    plan += [
        (0.30, "connect kill -9", server_kill(settings, "connect")),
        (0.50, "broker kill -9", server_kill(settings, "kafka")),
        (0.70, "elasticsearch down", server_kill(settings, "elasticsearch", ES_DOWN_S)),
    ]
    plan.sort(key=lambda step: step[0])
    try:
        with StallMonitor(settings) as stalls:
            stream.start()
            for fraction, kind, action in plan:
                wait_until(lambda f=fraction: stream.done >= f * SIZE.changes or stream.finished(), timeout=3600)
                run.inject(kind, action)
            assert stream.wait(timeout=3600), "the change stream did not finish"
            _progress(f"stream done: {stream.done} changes, {len(stream.errors)} source errors; converging")
            es = es_client(settings)
            content, converged_s = wait_for(
                lambda: check_content(es, settings, stream.expected), timeout=CONVERGE_TIMEOUT_S
            )
            still_found = [token for token in forgotten_tokens if found_documents(es, token)]
        after = _verify()
    finally:
        stream.stop()
        _leave_the_stack_as_found(settings)
    new_issues = sorted(_issues(after) - _issues(before))
    report.update(
        {
            "changes": stream.done,
            "documents_touched": len(stream.expected),
            "source_errors": stream.errors[:10],
            "faults": [fault.to_json() for fault in run.faults],
            "longest_capture_age_s": {s: round(a, 1) for s, a in sorted(stalls.longest.items())},
            "converged_after_stream_s": round(converged_s, 1),
            "content": content.to_json(),
            "forgotten_still_found": still_found,
            "verify": {"ok": after["ok"], "issues_before": len(_issues(before)), "new_issues": new_issues[:20]},
        }
    )
    out = PROJECT_ROOT / "bench-results" / f"faults-{SIZE.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    _progress(f"report: {out}\n{json.dumps(report, indent=2)}")

    assert stream.done == SIZE.changes
    assert content.ok, content.to_json()
    assert not still_found, f"a subject forgotten while the worker was killed is still searchable: {still_found}"
    assert not new_issues, f"streams verify found drift after the faults: {new_issues[:20]}"
    assert all(f.catch_up_s is not None for f in run.faults), [f.to_json() for f in run.faults]


def _leave_the_stack_as_found(settings: Settings) -> None:
    stack.up(settings, _progress)
    connectors.register(settings, _progress)
    if not worker_pids():
        start_worker(settings)
    assert wait_until(lambda: health(settings) is not None, timeout=300), "no worker answers after the suite"
