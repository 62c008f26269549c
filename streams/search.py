"""`streams search`: hybrid search over the fresh index, from the command line."""

from __future__ import annotations

import asyncio
import json

import click

from streams.settings import get_settings


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


@click.command()
@click.argument("query")
@click.option("--k", "k", default=10, show_default=True, help="Documents to return.")
@click.option("--source", "source", default=None, help="Only these sources (comma-separated: wiki,tickets,crm).")
@click.option(
    "--groups",
    default=None,
    help="Show only what these access groups may see (comma-separated). Without it: everything.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search(query: str, k: int, source: str | None, groups: str | None, as_json: bool) -> None:
    """Hybrid search: BM25 and kNN over the chunks, fused by reciprocal rank fusion, grouped by document.

    This command is an operator tool: it queries Elasticsearch directly with the worker's Elasticsearch
    credentials, so it sees every document unless --groups narrows the view. Search services call the
    worker's authenticated /search endpoint instead (README, "Who may search").
    """
    from streams.agents.runtime import embedder_for
    from streams.clients import async_elasticsearch_client, elasticsearch_client
    from streams.elastic.hybrid_index import search as search_index

    settings = get_settings()
    with elasticsearch_client(settings) as es:  # the serving generation's model, whatever the settings say
        embedder = embedder_for(settings, es, settings.index_alias)
    vector = embedder.encode([query])[0]

    async def run() -> list[dict[str, object]]:
        async with async_elasticsearch_client(settings) as client:
            hits = await search_index(client, settings.index_alias, query, vector, k, _split(source), _split(groups))
        return [hit.to_json() for hit in hits]

    hits = asyncio.run(run())
    if as_json:
        click.echo(json.dumps({"query": query, "hits": hits}, indent=2))
        return
    if not hits:
        click.echo("no results")
    for rank, hit in enumerate(hits, start=1):
        click.echo(f"{rank:2}. [{hit['source']}] {hit['title']}  ({hit['document_id']})  {hit['link']}")
        for chunk in hit["chunks"]:  # type: ignore[attr-defined]
            snippet = " … ".join(chunk["highlights"]) or chunk["text"][:200]
            click.echo(f"      {snippet.replace(chr(10), ' ')}")
