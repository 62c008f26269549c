"""Seed the sources with N documents, deterministically for a given seed: the example schemas through
their databases, the local stack's real applications (MediaWiki, Request Tracker, Tryton) through
their own APIs (streams/sources/seed_applications.py).

Every source draws from its own ``random.Random(f"{seed}:{source}")``, so the content of one
source does not depend on which other sources are seeded. The people are shared by all three.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from streams.settings import Settings
from streams.sources.connect import connect_mariadb, connect_postgres
from streams.sources.corpus import DOC_DIR, ensure_corpus, load_corpus
from streams.sources.people import People, make_people, people_count
from streams.sources.seed_applications import write_mediawiki, write_request_tracker, write_tryton
from streams.sources.seed_crm import generate_crm, generate_notes
from streams.sources.seed_tickets import generate_tickets
from streams.sources.seed_wiki import generate_wiki_pages
from streams.sources.write_postgres import reset_crm, reset_tickets, write_crm, write_tickets
from streams.sources.write_wiki import reset_wiki, write_wiki

# The sources seed knows how to fill: the example schemas, and the real applications where the local
# stack runs them. Any other configured source's content is its owner's to write; seed says so rather
# than guess at a schema.
EXAMPLE_SOURCES = ("wiki", "tickets", "crm")
APPLICATION_SOURCES = ("mediawiki", "rt", "tryton")
SEEDABLE_SOURCES = EXAMPLE_SOURCES + APPLICATION_SOURCES
# What a command that writes the example sources tells its user when they are not configured.
CONFIGURE_EXAMPLES = "set STREAMS_EXAMPLE_SOURCES=1 for the stack, the connectors, the worker and this command"
Advance = Callable[[int], None]


def examples_not_configured(configured: Collection[str], sources: Iterable[str] = EXAMPLE_SOURCES) -> list[str]:
    """Those of `sources` that are example sources and not configured (STREAMS_EXAMPLE_SOURCES is off
    and STREAMS_SOURCE_DSNS does not name them): nothing would index the rows written to them."""
    return [source for source in sources if source in EXAMPLE_SOURCES and source not in configured]


@dataclass
class SeedSummary:
    documents: dict[str, int] = field(default_factory=dict)  # per source
    rows: dict[str, int] = field(default_factory=dict)  # "source.table" -> rows inserted
    seconds: dict[str, float] = field(default_factory=dict)  # per source

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def split_documents(docs: int, sources: Sequence[str]) -> dict[str, int]:
    """Share ``docs`` out evenly over ``sources`` (the first ones get the remainder)."""
    share, extra = divmod(docs, len(sources))
    return {source: share + (1 if i < extra else 0) for i, source in enumerate(sources)}


def seed_people(docs: int, seed: int) -> People:
    return make_people(random.Random(f"{seed}:people"), *people_count(docs))


def run_seed(
    settings: Settings,
    docs: int,
    seed: int = 0,
    sources: Sequence[str] = EXAMPLE_SOURCES,
    *,
    reset: bool = False,
    corpus_dir: Path = DOC_DIR,
    progress: Callable[[str, int], Advance] | None = None,
) -> SeedSummary:
    """Seed the sources. ``progress(source, total)`` returns a callback that advances its bar."""
    unknown = set(sources) - set(SEEDABLE_SOURCES)
    if unknown:
        raise ValueError(f"seed cannot fill {sorted(unknown)}; it fills {', '.join(SEEDABLE_SOURCES)}")
    counts = split_documents(docs, sources)
    people = seed_people(docs, seed)
    bar = progress or (lambda _source, _total: lambda _n: None)
    summary = SeedSummary(documents=counts)
    for source in sources:
        started = time.monotonic()
        rng = random.Random(f"{seed}:{source}")
        if source == "wiki":
            corpus = load_corpus(ensure_corpus(corpus_dir), settings.cache_dir)
            with _closing(connect_mariadb(settings.dsn("wiki"), name="wiki")) as conn:
                if reset:
                    reset_wiki(conn)
                pages = generate_wiki_pages(rng, corpus, people, counts[source])
                rows = write_wiki(conn, pages, people, bar(source, counts[source]))
        elif source == "mediawiki":
            corpus = load_corpus(ensure_corpus(corpus_dir), settings.cache_dir)
            pages = generate_wiki_pages(rng, corpus, people, counts[source])
            rows = write_mediawiki(settings, pages, bar(source, counts[source]))
        elif source == "rt":
            rows = write_request_tracker(
                settings, generate_tickets(rng, people, counts[source]), bar(source, counts[source])
            )
        elif source == "tryton":
            crm = generate_crm(rng, people, counts[source])
            rows = write_tryton(settings, crm, generate_notes(rng, people, crm), bar(source, counts[source]))
        elif source == "tickets":
            with connect_postgres(settings.dsn("tickets"), name="tickets") as pg:
                if reset:
                    reset_tickets(pg)
                tickets = generate_tickets(rng, people, counts[source])
                rows = write_tickets(pg, tickets, people, bar(source, counts[source]))
        else:
            with connect_postgres(settings.dsn("crm"), name="crm") as pg:
                if reset:
                    reset_crm(pg)
                crm = generate_crm(rng, people, counts[source])
                rows = write_crm(pg, crm, generate_notes(rng, people, crm), bar(source, counts[source]))
        summary.rows.update(rows)
        summary.seconds[source] = time.monotonic() - started
    return summary


@contextmanager
def _closing(conn: object) -> Iterator[object]:
    try:
        yield conn
    finally:
        conn.close()  # type: ignore[attr-defined]
