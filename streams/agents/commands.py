"""`streams worker`: run the faust worker (indexing, deletions, freshness reports, metrics, search)."""

from __future__ import annotations

import click


@click.command()
@click.option("--loglevel", default="info", show_default=True, help="faust log level.")
def worker(loglevel: str) -> None:
    """Run the worker until interrupted.

    It indexes every change from the Debezium topics, serves deletion requests on their own lane,
    publishes freshness reports, and serves /metrics, /freshness and /search on
    127.0.0.1:$STREAMS_WORKER_WEB_PORT (default 16066).
    """
    import faust

    from streams.agents import index_changes, web  # noqa: F401  (registers the agents and pages)
    from streams.app import app

    for module in ("streams.agents.forget_subjects", "streams.agents.publish_freshness"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
