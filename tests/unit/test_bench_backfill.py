"""The backfill burst's shape: how its documents split between the wiki and the rest, and how long the
worker may take to drain it."""

import random
import re

from click.testing import CliRunner

from streams.bench import backfill, commands
from streams.sources.seed import seed_people, split_documents
from streams.sources.seed_tickets import generate_tickets


def test_a_third_of_a_small_burst_is_wiki_pages() -> None:
    assert backfill.burst_shares(300) == (100, 200)
    assert backfill.burst_shares(3) == (1, 2)


def test_wiki_copies_are_capped_in_a_large_burst() -> None:
    wiki, other = backfill.burst_shares(commands.FULL_BURST)
    assert wiki == backfill.WIKI_COPIES
    assert wiki + other == commands.FULL_BURST


def test_the_quick_burst_writes_five_thousand_rows() -> None:
    """The rows `streams seed` makes of the quick burst's tickets and CRM records (each CRM document is one
    contact or note row; a ticket is its row and its comments'), with the wiki pages' rows."""
    wiki, other = backfill.burst_shares(commands.QUICK_BURST)
    counts = split_documents(other, ("tickets", "crm"))
    tickets = generate_tickets(random.Random(7), seed_people(other, 7), counts["tickets"])
    ticket_rows = sum(1 + len(ticket.comments) for ticket in tickets)
    rows = backfill.WIKI_ROWS_PER_PAGE * wiki + ticket_rows + counts["crm"]
    assert 5000 <= rows <= 6000


def test_a_large_burst_gets_longer_to_drain() -> None:
    assert backfill.drain_limit_s(300) == backfill.DRAIN_FLOOR_S
    assert backfill.drain_limit_s(commands.FULL_BURST) > backfill.DRAIN_FLOOR_S


def test_the_help_names_the_wiki_cap() -> None:
    help_text = CliRunner().invoke(commands.bench, ["--help"]).output
    assert re.search(rf"up to\s+{backfill.WIKI_COPIES},", help_text)
