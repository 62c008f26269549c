"""`streams seed`: fill the source databases with documents to index."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from streams.cli import number_option
from streams.settings import get_settings
from streams.sources.connect import SourceUnavailable
from streams.sources.corpus import DOC_DIR, CorpusUnavailable
from streams.sources.seed import (
    APPLICATION_SOURCES,
    CONFIGURE_EXAMPLES,
    SEEDABLE_SOURCES,
    Advance,
    SeedSummary,
    examples_not_configured,
    run_seed,
)


@click.command()
@number_option(
    "--docs", "-n", default=300, at_least=1, help="Documents to create, shared evenly over the chosen sources."
)
@number_option("--seed", "seed", default=0, help="Random seed: the same seed and --docs give the same content.")
@click.option(
    "--source",
    "sources",
    default=None,
    help=f"Comma-separated sources to seed (default: the configured ones among {', '.join(SEEDABLE_SOURCES)}).",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Empty the example schemas' tables first (ids restart at 1); an application's content is added to.",
)
@click.option(
    "--corpus-dir",
    type=click.Path(path_type=Path),
    default=DOC_DIR,
    show_default=True,
    help="HTML pages that become wiki pages (installed with apt-get when missing).",
)
def seed(docs: int, seed: int, sources: str | None, reset: bool, corpus_dir: Path) -> None:
    """Seed the configured sources with realistic documents: MediaWiki, Request Tracker and Tryton
    through their own APIs where the local stack runs them (STREAMS_STACK_APPS, all three by default),
    and the example sources wiki (MariaDB), tickets and CRM (PostgreSQL) by SQL where they are
    configured (STREAMS_EXAMPLE_SOURCES=1).

    Wiki pages are the PostgreSQL 15 manual converted to wikitext, with 1-3 revisions each;
    tickets and CRM notes come from templates that mention products, errors and people. The same
    people appear in every source (staff as wiki authors, ticket agents and note authors). In the
    applications each revision is saved by its author's wiki account, each ticket created with its
    requestor, Cc and owner, replies and comments written by the agents, each party, opportunity and
    note by Tryton's API.

    \b
    Examples:
      streams seed --docs 60
      streams seed --docs 40 --source mediawiki,rt
      STREAMS_EXAMPLE_SOURCES=1 streams seed --docs 30000 --seed 7 --source tickets,crm
      STREAMS_EXAMPLE_SOURCES=1 streams seed --docs 300 --reset
    """
    settings = get_settings()
    configured = settings.sources  # read from the mappings' folder: once
    chosen = seed_sources(configured, sources)
    if not_running := [s for s in chosen if s in APPLICATION_SOURCES and s not in configured]:
        raise click.BadParameter(
            f"{', '.join(not_running)}: not configured; the local stack runs the applications that"
            " STREAMS_STACK_APPS names (all three unless it says otherwise)",
            param_hint="--source",
        )
    if examples_off := examples_not_configured(configured, chosen):
        raise click.BadParameter(
            f"{', '.join(examples_off)}: an example source, not configured (nothing would index its rows);"
            f" {CONFIGURE_EXAMPLES}",
            param_hint="--source",
        )
    try:
        with _progress() as progress:
            summary = run_seed(settings, docs, seed, chosen, reset=reset, corpus_dir=corpus_dir, progress=progress)
    except (SourceUnavailable, CorpusUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    _print_summary(summary)


def seed_sources(configured: tuple[str, ...], option: str | None) -> tuple[str, ...]:
    """The sources to seed: those named (each one seed can fill), else the configured ones it can fill,
    saying on stderr which configured sources it leaves alone."""
    if option is not None:
        chosen = tuple(s.strip() for s in option.split(",") if s.strip())
        if cannot := [s for s in chosen if s not in SEEDABLE_SOURCES]:
            raise click.BadParameter(
                f"seed cannot fill {', '.join(cannot)}: it fills {', '.join(SEEDABLE_SOURCES)} (the shipped"
                " schemas and the local stack's applications); write another source's rows into its database"
                " yourself",
                param_hint="--source",
            )
        if not chosen:
            raise click.BadParameter(f"choose from {', '.join(SEEDABLE_SOURCES)}", param_hint="--source")
        return chosen
    chosen = tuple(s for s in SEEDABLE_SOURCES if s in configured)
    for source in configured:
        if source not in SEEDABLE_SOURCES:
            click.echo(f"{source}: not seeded (seed fills only {', '.join(SEEDABLE_SOURCES)})", err=True)
    if not chosen:
        raise click.ClickException(
            f"none of the configured sources is one seed can fill ({', '.join(SEEDABLE_SOURCES)})"
        )
    return chosen


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Advance]]:
    """Progress bars on stderr: rich when it is installed, else a line per 10%."""
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        yield _plain_progress
        return
    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bars:

        def start(source: str, total: int) -> Advance:
            task = bars.add_task(source, total=total)
            return lambda n: bars.advance(task, n)

        yield start


def _plain_progress(source: str, total: int) -> Advance:
    done = 0
    step = max(1, total // 10)

    def advance(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if done // step != before // step or done == total:
            print(f"{source}: {done}/{total}", file=sys.stderr, flush=True)

    return advance


def _print_summary(summary: SeedSummary) -> None:
    for source, count in summary.documents.items():
        seconds = summary.seconds.get(source, 0.0)
        rate = count / seconds if seconds else 0.0
        click.echo(f"{source}: {count} documents in {seconds:.1f} s ({rate:.0f}/s)")
    width = max(len(table) for table in summary.rows)
    for table, rows in summary.rows.items():
        click.echo(f"  {table:<{width}}  {rows:>8}")
    click.echo(f"done in {summary.total_seconds:.1f} s")
