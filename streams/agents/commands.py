"""`streams worker`: run the faust worker (indexing, deletions, freshness reports, metrics, search)."""

from __future__ import annotations

import click


@click.command()
@click.option("--loglevel", default="info", show_default=True, help="faust log level.")
def worker(loglevel: str) -> None:
    """Run the worker until interrupted.

    It indexes every change from the Debezium topics, serves deletion requests on their own lane,
    publishes freshness reports, and serves /metrics, /freshness and /search on
    $STREAMS_WORKER_WEB_BIND:$STREAMS_WORKER_WEB_PORT (default 127.0.0.1:16066, loopback only).
    """
    import faust

    # Importing the agent modules registers their agents, timers and pages on the app.
    from streams.agents import (  # noqa: F401
        follow_ledger,
        forget_subjects,
        health,
        index_changes,
        publish_freshness,
        web,
    )
    from streams.app import app, mappings, settings
    from streams.auth import CredentialsConfigError
    from streams.clients import check_elasticsearch_login
    from streams.topics import ensure_topics

    check_elasticsearch_login(settings)  # a refused credential stops the start, with the reason
    ensure_topics(settings, mappings)  # builds the first Kafka client: a refused Kafka login stops here
    try:
        web.search_authenticator()  # unreadable search credentials stop the start, with the reason
    except CredentialsConfigError as exc:
        raise click.ClickException(str(exc)) from exc

    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
