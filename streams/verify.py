"""`streams verify`: compare every source database with the index.

The sources are read through `streams.sources.read_documents`, the index and the comparison live in
`streams.elastic.verify_index`; this module only joins the two and prints the result.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import click

from streams.clients import elasticsearch_client
from streams.elastic.verify_index import CATEGORIES, SourceReport, compare_all, persisting, read_index
from streams.pipeline.document_mapping import Mappings, load_mappings
from streams.settings import PROJECT_ROOT, Settings, get_settings
from streams.sources.connect import SourceUnavailable
from streams.sources.read_documents import read_source_documents


def verify_all(settings: Settings, client: Any, mappings: Mappings) -> list[SourceReport]:
    """The index read first, then every source: a change applied in between shows as drift that
    `--recheck` then drops, never as a document missing from both snapshots."""
    index = read_index(client, settings.index_alias)
    rows = {mapping.source: read_source_documents(settings, mapping) for mapping in mappings.sources}
    return compare_all(mappings, rows, index)


def _print_table(reports: list[SourceReport], limit: int) -> None:
    header = f"{'source':<10}{'rows':>8}{'indexed':>9}{'forgotten':>10}" + "".join(f"{c:>13}" for c in CATEGORIES)
    click.echo(header)
    click.echo("-" * len(header))
    for r in reports:
        counts = "".join(f"{len(r.issues[c]):>13}" for c in CATEGORIES)
        click.echo(f"{r.source:<10}{r.source_documents:>8}{r.indexed_documents:>9}{r.forgotten:>10}{counts}")
    for r in reports:
        for category in CATEGORIES:
            for issue in r.issues[category][:limit]:
                click.echo(f"  {category:<12}{issue.document_id}: {issue.reason}")
            if len(r.issues[category]) > limit:
                click.echo(f"  {category:<12}... and {len(r.issues[category]) - limit} more in {r.source}")
    ok = all(r.ok for r in reports)
    click.echo("index consistent with the sources" if ok else "index and sources differ")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--recheck",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait before checking again; only drift seen both times is reported (changes in flight settle).",
)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Issues listed per category.")
def verify(as_json: bool, recheck: float, limit: int) -> None:
    """Compare every source database with the index: missing, stale, extra, resurrected.

    Exits 1 when anything is off, 0 when the index matches the sources.

    \b
    Examples:
      streams verify
      streams verify --json --recheck 5
    """
    from elasticsearch import ApiError, TransportError

    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    settings = get_settings()
    mappings = load_mappings(PROJECT_ROOT / "connectors")
    client = elasticsearch_client(settings)
    try:
        reports = verify_all(settings, client, mappings)
        if recheck and not all(r.ok for r in reports):
            time.sleep(recheck)
            reports = persisting(reports, verify_all(settings, client, mappings))
    except SourceUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except (ApiError, TransportError) as exc:
        raise click.ClickException(f"Elasticsearch at {settings.elasticsearch_url}: {exc}") from exc
    if as_json:
        click.echo(json.dumps({"ok": all(r.ok for r in reports), "sources": [r.to_json() for r in reports]}, indent=2))
    else:
        _print_table(reports, limit)
    sys.exit(0 if all(r.ok for r in reports) else 1)
