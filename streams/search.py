"""`streams search`: hybrid search over the fresh index, from the command line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys

import click

from streams.cli import number_option
from streams.settings import Settings, get_settings

log = logging.getLogger(__name__)

# The bounds /search has (agents/web.py), so that both refuse what the other refuses.
MAX_K = 100
MAX_QUERY_CHARS = 2000
WORKER_TIMEOUT_S = 30.0  # a worker still loading its model answers once it has
EMPHASIS = re.compile(r"<em>(.*?)</em>", re.DOTALL)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


def render_highlight(fragment: str, tty: bool) -> str:
    """Elasticsearch marks the query's words with <em>: bold on a terminal, plain text elsewhere."""
    return EMPHASIS.sub(lambda m: click.style(m.group(1), bold=True) if tty else m.group(1), fragment)


def _query(ctx: click.Context, param: click.Parameter, value: str) -> str:
    text = value.strip()
    if not text:
        raise click.BadParameter("the query is empty", ctx=ctx, param=param)
    if len(text) > MAX_QUERY_CHARS:
        raise click.BadParameter(
            f"the query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}", ctx=ctx, param=param
        )
    return text


def _quiet_model_loading() -> None:
    """Loading the model logs where it came from (cache paths) at INFO: noise beside the hits, unless -v."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("streams.embedding", "sentence_transformers", "transformers"):
            logging.getLogger(name).setLevel(logging.WARNING)


@click.command()
@click.argument("query", callback=_query)
@number_option("--k", "k", default=10, at_least=1, at_most=MAX_K, help="Documents to return.")
@click.option("--source", "source", default=None, help="Only these sources (comma-separated: wiki,tickets,crm).")
@click.option(
    "--groups",
    default=None,
    help="Show only what these access groups may see (comma-separated). Without it: everything.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--direct",
    is_flag=True,
    help="Search Elasticsearch from this process (loading the model) even when a worker answers.",
)
def search(query: str, k: int, source: str | None, groups: str | None, as_json: bool, direct: bool) -> None:
    """Hybrid search: BM25 and kNN over the chunks, fused by reciprocal rank fusion, grouped by document.

    This command is an operator tool: it sees every document unless --groups narrows the view. When a
    worker answers and the local stack's operator key exists, it asks the worker's /search (no model
    to load: a fraction of a second); otherwise, or with --direct, it queries Elasticsearch itself with
    the worker's Elasticsearch credentials. Search services call /search (docs/search-api.md).

    \b
    Examples:
      streams search "printer jams"
      streams search "VPN drops" --source tickets --k 5 --json
    """
    settings = get_settings()
    sources = _split(source)
    configured = settings.sources  # read from the connectors folder: once
    if unknown := [s for s in sources or [] if s not in configured]:
        raise click.BadParameter(
            f"unknown source {', '.join(unknown)}: the configured sources are {', '.join(configured)}",
            param_hint="'--source'",
        )
    hits = None if direct else _from_worker(settings, query, k, sources, _split(groups))
    if hits is None:
        hits = _from_elasticsearch(settings, query, k, sources, _split(groups))
    if as_json:
        click.echo(json.dumps({"query": query, "hits": hits}, indent=2))
        return
    print_hits(hits, sys.stdout.isatty())


def _from_worker(
    settings: Settings, query: str, k: int, sources: list[str] | None, groups: list[str] | None
) -> list[dict[str, object]] | None:
    """The hits of the running worker's /search, as the local operator; None when there is no local
    operator key or no worker answers (the command then searches Elasticsearch itself)."""
    import httpx

    from streams.auth import CredentialsConfigError, local_key
    from streams.client import SearchClient, SearchError

    try:
        key = local_key(settings, "local-operator")
    except CredentialsConfigError:
        return None
    try:
        with SearchClient(settings.worker_url(), key, timeout_s=WORKER_TIMEOUT_S) as client:
            page = client.search(query, k=k, source=sources, groups=groups)
    except (httpx.HTTPError, SearchError) as exc:
        log.debug("searching Elasticsearch directly: the worker's /search did not answer (%s)", exc)
        return None
    return [hit.model_dump() for hit in page.hits]


def _from_elasticsearch(
    settings: Settings, query: str, k: int, sources: list[str] | None, groups: list[str] | None
) -> list[dict[str, object]]:
    _quiet_model_loading()
    from streams.agents.runtime import embedder_for
    from streams.clients import async_elasticsearch_client, elasticsearch_client
    from streams.elastic.hybrid_index import search_page

    with elasticsearch_client(settings) as es:  # the serving generation's model, whatever the settings say
        embedder = embedder_for(settings, es, settings.index_alias)
    vector = embedder.encode([query])[0]

    async def run() -> list[dict[str, object]]:
        async with async_elasticsearch_client(settings) as client:
            page = await search_page(client, settings.index_alias, query, vector, k, sources, groups)
        return [hit.to_json() for hit in page.hits]

    return asyncio.run(run())


def print_hits(hits: list[dict[str, object]], tty: bool) -> None:
    if not hits:
        click.echo("no results")
    for rank, hit in enumerate(hits, start=1):
        click.echo(f"{rank:2}. [{hit['source']}] {hit['title']}  ({hit['document_id']})  {hit['link']}")
        for chunk in hit["chunks"]:  # type: ignore[attr-defined]
            snippet = " … ".join(render_highlight(h, tty) for h in chunk["highlights"]) or chunk["text"][:200]
            click.echo(f"      {snippet.replace(chr(10), ' ')}", color=tty)
