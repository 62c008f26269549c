"""Write generated wiki pages into the MediaWiki-shaped MariaDB schema, a batch per commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from streams.sources.batches import batches
from streams.sources.people import People, Person
from streams.sources.seed_wiki import WikiPageSeed

BATCH_PAGES = 100


def reset_wiki(conn: Any) -> None:
    with conn.cursor() as cur:
        for table in ("revision", "page", "`user`"):
            cur.execute(f"DELETE FROM {table}")
            cur.execute(f"ALTER TABLE {table} AUTO_INCREMENT = 1")
    conn.commit()


def ensure_wiki_users(conn: Any, people: Iterable[Person]) -> dict[str, int]:
    """Insert the people missing from `user` (user_name is the email, SSO-style); email -> user_id."""
    rows = [(p.email, p.name, p.email) for p in people]
    with conn.cursor() as cur:
        cur.executemany("INSERT IGNORE INTO `user` (user_name, user_real_name, user_email) VALUES (%s, %s, %s)", rows)
        cur.execute("SELECT user_name, user_id FROM `user`")
        ids = {name: int(user_id) for name, user_id in cur.fetchall()}
    conn.commit()
    return ids


def write_wiki(
    conn: Any, pages: Iterable[WikiPageSeed], people: People, advance: Callable[[int], None]
) -> dict[str, int]:
    """Insert the pages with explicit ids (max + 1 ...), so that a batch is two multi-row INSERTs."""
    users = ensure_wiki_users(conn, people.staff)
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(page_id), 0) FROM page")
        next_page = int(cur.fetchone()[0]) + 1
        cur.execute("SELECT COALESCE(MAX(rev_id), 0) FROM revision")
        next_rev = int(cur.fetchone()[0]) + 1
        cur.execute("SELECT page_title FROM page WHERE page_namespace = 0")
        titles = {str(row[0]).casefold() for row in cur.fetchall()}
    counts = {"wiki.user": len(people.staff), "wiki.page": 0, "wiki.revision": 0}
    for batch in batches(pages, BATCH_PAGES):
        page_rows, revision_rows = [], []
        for page in batch:
            title = _unique_title(page.title, titles)
            parent = 0
            for revision in page.revisions:
                text_len = len(revision.text.encode("utf-8"))
                revision_rows.append(
                    (
                        next_rev,
                        next_page,
                        parent,
                        users[revision.author.email],
                        revision.author.email,
                        _naive(revision.timestamp),
                        revision.comment,
                        revision.text,
                        text_len,
                    )
                )
                parent = next_rev
                next_rev += 1
            latest = page.revisions[-1]
            page_rows.append(
                (
                    next_page,
                    0,
                    title,
                    page.restrictions,
                    0,
                    parent,
                    _naive(latest.timestamp),
                    len(latest.text.encode("utf-8")),
                )
            )
            next_page += 1
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO page (page_id, page_namespace, page_title, page_restrictions, page_is_redirect,"
                " page_latest, page_touched, page_len) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                page_rows,
            )
            cur.executemany(
                "INSERT INTO revision (rev_id, rev_page, rev_parent_id, rev_user, rev_user_text,"
                " rev_timestamp, rev_comment, rev_text, rev_len) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                revision_rows,
            )
        conn.commit()
        counts["wiki.page"] += len(page_rows)
        counts["wiki.revision"] += len(revision_rows)
        advance(len(page_rows))
    return counts


def _unique_title(title: str, taken: set[str]) -> str:
    """``title``, or ``title (n)`` when taken. MariaDB's default collation ignores case, so do we."""
    candidate, n = title.strip()[:255], 1
    while candidate.casefold() in taken:
        n += 1
        suffix = f" ({n})"
        candidate = title.strip()[: 255 - len(suffix)] + suffix
    taken.add(candidate.casefold())
    return candidate


def _naive(moment: datetime) -> datetime:
    """MariaDB DATETIME has no zone: the session runs in UTC, so store the UTC wall time."""
    return moment.astimezone(UTC).replace(tzinfo=None)
