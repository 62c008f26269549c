"""Generate wiki pages: the corpus pages, each with 1-3 revisions by staff and read groups.

Beyond the corpus size, pages are reused with a numbered title ("VACUUM (2)").
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from streams.sources.html_to_wikitext import WikiPage
from streams.sources.people import People, Person
from streams.sources.timeline import EPOCH

# Who may read a page (page_restrictions). Every page names at least one group.
PAGE_GROUPS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("engineering", "support"), 10),
    (("engineering",), 5),
    (("engineering", "support", "sales"), 4),
    (("support",), 2),
    (("engineering", "support", "billing", "sales", "exec"), 3),
    (("engineering", "exec"), 1),
)
LONGEST_FIRST = 5
REVISION_COMMENTS = (
    "Imported from the PostgreSQL 15 manual",
    "Expanded the examples",
    "Fixed typos",
    "Clarified wording after a support case",
    "Added a section",
    "Updated for our clusters",
    "Reworded the introduction",
    "Added page owners",
)


@dataclass(frozen=True)
class RevisionSeed:
    author: Person
    timestamp: datetime
    comment: str
    text: str


@dataclass(frozen=True)
class WikiPageSeed:
    title: str
    groups: tuple[str, ...]
    revisions: tuple[RevisionSeed, ...]  # oldest first; the last is the page's text

    @property
    def restrictions(self) -> str:
        return ",".join(self.groups)


def generate_wiki_pages(
    rng: random.Random, corpus: Sequence[WikiPage], people: People, count: int
) -> Iterator[WikiPageSeed]:
    if not corpus:
        raise ValueError("the wiki corpus is empty")
    # The longest pages come first so that even a small seed has pages of 50+ paragraphs (the
    # benchmark edits one paragraph of a long page); the rest follow in a seeded order.
    by_length = sorted(range(len(corpus)), key=lambda i: len(corpus[i].text), reverse=True)
    longest, rest = by_length[:LONGEST_FIRST], by_length[LONGEST_FIRST:]
    rest.sort()
    rng.shuffle(rest)
    order = longest + rest
    options = [groups for groups, _ in PAGE_GROUPS]
    weights = [weight for _, weight in PAGE_GROUPS]
    for i in range(count):
        page = corpus[order[i % len(order)]]
        cycle = i // len(order)
        title = page.title if cycle == 0 else f"{page.title} ({cycle + 1})"
        groups = rng.choices(options, weights=weights)[0]
        yield WikiPageSeed(title=title, groups=groups, revisions=_revisions(rng, page.text, people))


def _revisions(rng: random.Random, text: str, people: People) -> tuple[RevisionSeed, ...]:
    owner = people.staff_in(rng, "engineering", "support")
    final = text.rstrip("\n") + "\n\n" + _owners_section(rng, owner, people) + "\n"
    paragraphs = final.split("\n\n")
    count = rng.choices((1, 2, 3), weights=(4, 3, 2))[0]
    when = EPOCH - timedelta(days=rng.uniform(30, 720))
    revisions = []
    kept = 0
    for n in range(count):
        last = n == count - 1
        if last:
            body = final
        else:
            # An earlier draft: the first part of the page, as it stood before it was expanded. Each
            # draft is longer than the one before and shorter than the page: an application saves no
            # revision for a text that did not change.
            share = rng.uniform(0.4, 0.9)
            keep = min(max(kept + 1, int(len(paragraphs) * share)), len(paragraphs) - 1)
            if keep <= kept:
                continue
            kept = keep
            body = "\n\n".join(paragraphs[:keep]) + "\n"
        author = owner if n == 0 else people.staff_in(rng, "engineering", "support", "sales")
        comment = REVISION_COMMENTS[0] if n == 0 else rng.choice(REVISION_COMMENTS[1:])
        revisions.append(RevisionSeed(author=author, timestamp=when, comment=comment, text=body))
        when += timedelta(days=rng.uniform(0.1, 60), seconds=rng.randint(0, 86_399))
    return tuple(revisions)


def _owners_section(rng: random.Random, owner: Person, people: People) -> str:
    reviewer = people.staff_in(rng, "engineering", "support")
    return (
        "== Page owners ==\n\n"
        f"Maintained by {owner.name} ({owner.email}) of the {owner.team} team; "
        f"reviewed by {reviewer.name} ({reviewer.email}). "
        f"Questions go to the #{owner.team}-help channel."
    )
