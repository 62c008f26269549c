"""How long a worker restarted after kill -9 takes to index again (the "fast recovery" promise).

    python -m tests.integration.measure_restart [--runs 3]

Run from the project root with the stack up and a worker of this checkout running (or none: one is
started, and killed at the end). Each run: kill -9 the worker, start a new one at once, commit a
probe change right away and time until search finds it, beside the time until the new worker's HTTP
server answers (model and index set up). The new workers inherit this process's environment, so

    STREAMS_WORKER_STATIC_MEMBERSHIP=false python -m tests.integration.measure_restart

measures the same without static membership. The first restart after switching modes is a warm-up
(the member left by the other mode must leave the group first) and is not counted. Prints one JSON
object; a measurement, not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from streams.agents.worker_process import worker_answers
from streams.app import create_app
from streams.settings import get_settings
from streams.sources import edits
from tests.integration.helpers import es_client, found_documents, unique, wait_until
from tests.integration.test_faults import kill_worker, start_worker, worker_pids


def restart_once(ticket_id: int, timeout_s: float = 300.0) -> dict[str, float | None]:
    settings = get_settings()
    es = es_client(settings)
    if worker_pids():
        kill_worker()
    started = time.monotonic()
    start_worker(settings)
    token = unique("zr")
    edits.set_ticket_description(ticket_id, f"restart probe {token}")
    answered = wait_until(lambda: worker_answers(settings), timeout=timeout_s, interval=0.2)
    answers_s = round(time.monotonic() - started, 1) if answered else None
    found = wait_until(
        lambda: f"tickets/ticket/{ticket_id}" in found_documents(es, token), timeout=timeout_s, interval=0.2
    )
    return {"answers_s": answers_s, "indexes_s": round(time.monotonic() - started, 1) if found else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="restarts measured after the warm-up (default 3)")
    args = parser.parse_args()
    settings = get_settings()
    ticket = edits.add_ticket("Restart probe", "probe", "restart.probe@example.com", ["support"])
    was_running = bool(worker_pids())
    warm_up = restart_once(ticket)
    runs = [restart_once(ticket) for _ in range(args.runs)]
    if not was_running:
        kill_worker()  # leave no worker behind that this run started
    indexed = [r["indexes_s"] for r in runs if r["indexes_s"] is not None]
    print(
        json.dumps(
            {
                "static_membership": settings.worker_static_membership,
                "group_instance_id": create_app(settings).conf.consumer_group_instance_id,
                "session_timeout_s": settings.worker_session_timeout_s,
                "warm_up": warm_up,
                "runs": runs,
                "median_indexes_s": statistics.median(indexed) if indexed else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
