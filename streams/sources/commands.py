"""`streams seed`: fill the source databases with documents to index."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from streams.settings import get_settings
from streams.sources.connect import SourceUnavailable
from streams.sources.corpus import DOC_DIR, CorpusUnavailable
from streams.sources.seed import SOURCES, Advance, SeedSummary, run_seed


@click.command()
@click.option(
    "--docs",
    "-n",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Documents to create, shared evenly over the chosen sources.",
)
@click.option(
    "--seed",
    "seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed: the same seed and --docs give the same content.",
)
@click.option(
    "--source", "sources", default=",".join(SOURCES), show_default=True, help="Comma-separated sources to seed."
)
@click.option("--reset", is_flag=True, help="Empty the sources' tables first (ids restart at 1).")
@click.option(
    "--corpus-dir",
    type=click.Path(path_type=Path),
    default=DOC_DIR,
    show_default=True,
    help="HTML pages that become wiki pages (installed with apt-get when missing).",
)
def seed(docs: int, seed: int, sources: str, reset: bool, corpus_dir: Path) -> None:
    """Seed the wiki (MariaDB), tickets and CRM (PostgreSQL) with realistic documents.

    Wiki pages are the PostgreSQL 15 manual converted to wikitext, with 1-3 revisions each;
    tickets and CRM notes come from templates that mention products, errors and people. The same
    people appear in every source (staff as wiki authors, ticket agents and note authors).

    \b
    Examples:
      streams seed --docs 300 --reset
      streams seed --docs 30000 --seed 7 --source tickets,crm
    """
    chosen = tuple(s.strip() for s in sources.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SOURCES]
    if not chosen or unknown:
        raise click.BadParameter(f"choose from {', '.join(SOURCES)}", param_hint="--source")
    try:
        with _progress() as progress:
            summary = run_seed(
                get_settings(), docs, seed, chosen, reset=reset, corpus_dir=corpus_dir, progress=progress
            )
    except (SourceUnavailable, CorpusUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    _print_summary(summary)


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
