"""`streams worker`: run the faust worker (indexing, deletions, freshness reports, metrics, search)."""

from __future__ import annotations

import click


@click.command()
@click.option("--loglevel", default="info", show_default=True, help="faust log level.")
def worker(loglevel: str) -> None:
    """Run the worker until interrupted.

    It indexes every change from the Debezium topics, serves deletion requests on their own lane,
    publishes freshness reports, and serves the web console (/), /metrics, /health, /freshness and /search on
    $STREAMS_WORKER_WEB_BIND:$STREAMS_WORKER_WEB_PORT (default 127.0.0.1:16066, loopback only).
    """
    import faust

    from streams.app import create_app
    from streams.auth import CredentialsConfigError
    from streams.clients import check_elasticsearch_login
    from streams.forget.signing import SigningKeyError
    from streams.logs import logging_config
    from streams.settings import get_settings
    from streams.topics import ensure_topics

    settings = get_settings()
    check_elasticsearch_login(settings)  # a refused credential stops the start, with the reason
    app = create_app(settings)
    ensure_topics(settings, app.worker.mappings)  # builds the first Kafka client: a refused Kafka login stops here
    try:
        app.worker.search_authenticator()  # unreadable search credentials stop the start, with the reason
    except CredentialsConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        app.worker.deletion.chain.key()  # a receipt that cannot be signed must stop the start, not a request
    except SigningKeyError as exc:
        raise click.ClickException(f"{exc} (STREAMS_RECEIPT_SIGNING_KEY_FILE; `streams stack up` makes one)") from exc

    # faust would install its own format: the worker logs in the commands' one (STREAMS_LOG_FORMAT).
    worker = faust.Worker(app, loglevel=loglevel, logging_config=logging_config(settings.log_format, loglevel.upper()))
    worker.execute_from_commandline()
