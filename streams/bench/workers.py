"""Workers: backfill throughput with 1, 2 and 3 worker processes in one consumer group, and who used
the CPU meanwhile.

For each count, the scenario starts that many `streams worker` processes (own web ports, one group),
waits until each answers, writes a burst of new tickets and CRM documents with `streams seed`, and
measures chunks embedded per second of wall time from the burst's first source commit to its last
chunk indexed. The workers are stopped between counts. A worker already answering on the default port
would be one more member of the group, so the scenario refuses to run beside it.

On a two-core machine the figures cannot scale: every worker embeds on the same two cores, beside
Elasticsearch, Kafka and Connect; the CPU split says where the seconds went.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from streams.agents.worker_process import worker_answers
from streams.bench.backfill import _max_ids, _new_documents, indexed_burst, seed_tickets_and_crm
from streams.bench.cpu import cpu_seconds, cpu_used
from streams.bench.probes import BenchError, Progress, WorkerLag, states
from streams.settings import Settings
from streams.stack.runner import wait_ended

FIRST_PORT = 16181
LAG_SLACK = 5


def _start(settings: Settings, count: int) -> list[subprocess.Popen[bytes]]:
    processes = []
    for n in range(count):
        env = {**os.environ, "STREAMS_WORKER_WEB_PORT": str(FIRST_PORT + n)}
        with open(settings.stack_home / f"worker-bench-{FIRST_PORT + n}.log", "ab") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", "worker"], stdout=log, stderr=subprocess.STDOUT, env=env
                )
            )
    deadline = time.monotonic() + 300
    for n, process in enumerate(processes):
        port_settings = settings.model_copy(update={"worker_web_port": FIRST_PORT + n})
        while not worker_answers(port_settings):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(processes)
                raise BenchError(f"worker on port {FIRST_PORT + n} did not start; see {settings.stack_home}")
            time.sleep(1)
    return processes


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        if process.poll() is None and not wait_ended(process.pid, 60):
            process.kill()


def _one_count(settings: Settings, client: Any, progress: Progress, count: int, docs: int) -> dict[str, Any]:
    processes = _start(settings, count)
    try:
        with WorkerLag(settings) as lag:
            while lag.behind() > LAG_SLACK:  # a backlog from before would be measured as throughput
                time.sleep(1)
            time.sleep(5)  # the group settles: every member has its partitions
            since = datetime.now(UTC).isoformat()
            started = time.time()
            cpu_before = cpu_seconds(settings)
            ids_before = _max_ids(settings)
            seed_tickets_and_crm(docs, random.randrange(10**6))
            documents = _new_documents(settings, ids_before)
            deadline = time.monotonic() + 900
            while True:
                indexed = len(states(client, settings.index_alias, documents))
                if indexed >= len(documents) and lag.behind() <= LAG_SLACK:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{count} workers: {indexed}/{len(documents)} indexed after 900 s")
                time.sleep(1)
            cpu = cpu_used(cpu_before, cpu_seconds(settings))
        burst = indexed_burst(client, settings.index_alias, since, started)
        chunks, wall = burst.chunks, burst.wall_s
        result = {
            "workers": count,
            "documents": len(documents),
            "chunks": len(chunks),
            "wall_s": round(wall, 2),
            "chunks_per_s": round(len(chunks) / wall, 2),
            "cpu_s": cpu,
        }
        progress(f"workers: {count} -> {result['chunks_per_s']} chunks/s ({len(chunks)} chunks, cpu {cpu})")
        return result
    finally:
        _stop(processes)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # Python's default for SIGTERM ends the process without running `finally`: the workers this
    # scenario started would outlive it (and stay in the consumer group).
    raise SystemExit(128 + signum)


def run(
    settings: Settings, client: Any, progress: Progress, *, docs: int, counts: tuple[int, ...] = (1, 2, 3)
) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if worker_answers(settings):
        raise BenchError(
            f"a worker answers at {settings.worker_url()}: it would join the group; stop it to measure 1, 2, 3 workers"
        )
    runs = [_one_count(settings, client, progress, count, docs) for count in counts]
    base = runs[0]["chunks_per_s"] or None
    return {
        "runs": runs,
        "speedup": [round(r["chunks_per_s"] / base, 2) if base else None for r in runs],
        "cores": os.cpu_count(),
        "document_partitions": settings.document_partitions,
        "method": (
            "per count: N `streams worker` processes in one group; `streams seed --source tickets,crm` burst;"
            " chunks in the index with indexed_at after the start / (last indexed_at - first source commit);"
            " cpu_s: CPU seconds per part of the stack over the same window (bench/cpu.py)"
        ),
    }
