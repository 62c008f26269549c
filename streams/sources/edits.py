"""Real edits in the source databases, for the demo, the tests and the benchmark.

Each function opens its own connection (the DSN defaults to the settings' one), makes one small
change in one transaction, and returns what it created. Debezium captures these like any edit.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from streams.settings import get_settings
from streams.sources.connect import connect_mariadb, connect_postgres

# -- wiki (MariaDB) -----------------------------------------------------------------------------

_EDIT_SENTENCES = (
    "Our production clusters follow this guidance since the last incident review.",
    "See the runbook for the exact commands we use on managed instances.",
    "Note: on our managed fleet this setting is controlled by the platform team.",
    "This was verified again during the quarterly disaster-recovery drill.",
    "Ask in #engineering-help before changing this on a shared cluster.",
)


def _wiki(dsn: str | None) -> Any:
    return connect_mariadb(dsn or get_settings().dsn("wiki"), name="wiki")


@contextmanager
def _wiki_cursor(dsn: str | None) -> Iterator[Any]:
    """A cursor on the wiki in one transaction: committed when the block ends, never when it raises."""
    conn = _wiki(dsn)
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    finally:
        conn.close()


def _postgres(source: str, dsn: str | None) -> psycopg.Connection[Any]:
    """A connection to a PostgreSQL source; as a context manager it commits the block, or rolls it back."""
    return connect_postgres(dsn or get_settings().dsn(source), name=source)


def _ensure_wiki_user(cur: Any, email: str) -> int:
    cur.execute(
        "INSERT IGNORE INTO `user` (user_name, user_real_name, user_email) VALUES (%s, %s, %s)",
        (email, email.split("@")[0].replace(".", " ").title(), email),
    )
    cur.execute("SELECT user_id FROM `user` WHERE user_name = %s", (email,))
    return int(cur.fetchone()[0])


def _add_revision(cur: Any, page_id: int, parent: int, author_email: str, comment: str, text: str) -> int:
    user_id = _ensure_wiki_user(cur, author_email)
    size = len(text.encode("utf-8"))
    cur.execute(
        "INSERT INTO revision (rev_page, rev_parent_id, rev_user, rev_user_text, rev_comment, rev_text, rev_len)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (page_id, parent, user_id, author_email, comment, text, size),
    )
    rev_id = int(cur.lastrowid)
    cur.execute(
        "UPDATE page SET page_latest = %s, page_len = %s, page_touched = CURRENT_TIMESTAMP(3) WHERE page_id = %s",
        (rev_id, size, page_id),
    )
    return rev_id


def editable_paragraphs(text: str) -> list[int]:
    """Indexes (in ``text.split("\\n\\n")``) of plain prose paragraphs: no heading, list or code."""
    blocks = text.split("\n\n")
    return [
        i
        for i, block in enumerate(blocks)
        if block.strip()
        and not block.lstrip().startswith(("=", "*", "#", "<pre>", " ", ";", ":", "{|"))
        and "</pre>" not in block
    ]


def edit_wiki_paragraph(
    page_id: int, rng: random.Random, *, author_email: str | None = None, dsn: str | None = None
) -> int:
    """Save a new revision of the page with exactly one prose paragraph changed; the new rev_id."""
    with _wiki_cursor(dsn) as cur:
        cur.execute(
            "SELECT r.rev_id, r.rev_text, r.rev_user_text FROM page p JOIN revision r ON r.rev_id = p.page_latest"
            " WHERE p.page_id = %s FOR UPDATE",
            (page_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"wiki page {page_id} does not exist")
        parent, text, last_author = int(row[0]), str(row[1]), str(row[2])
        blocks = text.split("\n\n")
        candidates = editable_paragraphs(text) or [len(blocks) - 1]
        index = rng.choice(candidates)
        blocks[index] = f"{blocks[index].rstrip()} {rng.choice(_EDIT_SENTENCES)} (edit {rng.randrange(10**6)})"
        rev_id = _add_revision(
            cur, page_id, parent, author_email or last_author, "Clarified one paragraph", "\n\n".join(blocks)
        )
    return rev_id


def new_wiki_page(title: str, text: str, groups: Sequence[str], author_email: str, *, dsn: str | None = None) -> int:
    """Create a page with one revision; its page_id."""
    if not groups:
        raise ValueError("a wiki page needs at least one group")
    with _wiki_cursor(dsn) as cur:
        cur.execute(
            "INSERT INTO page (page_namespace, page_title, page_restrictions) VALUES (0, %s, %s)",
            (title, ",".join(groups)),
        )
        page_id = int(cur.lastrowid)
        _add_revision(cur, page_id, 0, author_email, "Created page", text)
    return page_id


def replace_wiki_text(page_id: int, text: str, author_email: str, *, dsn: str | None = None) -> int:
    """Save a new revision of the page with the whole text replaced; the new rev_id."""
    with _wiki_cursor(dsn) as cur:
        cur.execute("SELECT page_latest FROM page WHERE page_id = %s FOR UPDATE", (page_id,))
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"wiki page {page_id} does not exist")
        rev_id = _add_revision(cur, page_id, int(row[0]), author_email, "Rewrote the page", text)
    return rev_id


def set_wiki_page_groups(page_id: int, groups: Sequence[str], *, dsn: str | None = None) -> None:
    with _wiki_cursor(dsn) as cur:
        cur.execute("UPDATE page SET page_restrictions = %s WHERE page_id = %s", (",".join(groups), page_id))


def delete_wiki_page(page_id: int, *, dsn: str | None = None) -> int:
    """Delete the page and all its revisions; the number of revisions deleted."""
    with _wiki_cursor(dsn) as cur:
        revisions = cur.execute("DELETE FROM revision WHERE rev_page = %s", (page_id,))
        cur.execute("DELETE FROM page WHERE page_id = %s", (page_id,))
    return int(revisions)


def long_wiki_page(min_len: int = 40_000, *, dsn: str | None = None) -> int:
    """The page_id of the shortest page of at least ``min_len`` bytes (else the longest page)."""
    with _wiki_cursor(dsn) as cur:
        cur.execute("SELECT page_id FROM page WHERE page_len >= %s ORDER BY page_len, page_id LIMIT 1", (min_len,))
        row = cur.fetchone()
        if row is None:
            cur.execute("SELECT page_id FROM page ORDER BY page_len DESC, page_id LIMIT 1")
            row = cur.fetchone()
        if row is None:
            raise LookupError("the wiki has no pages: run `streams seed` first")
        return int(row[0])


def page_length(page_id: int, *, dsn: str | None = None) -> int:
    with _wiki_cursor(dsn) as cur:
        cur.execute("SELECT page_len FROM page WHERE page_id = %s", (page_id,))
        row = cur.fetchone()
        return int(row[0]) if row else 0


# -- tickets (PostgreSQL) -----------------------------------------------------------------------


def add_ticket(
    subject: str,
    description: str,
    requester_email: str,
    groups: Sequence[str],
    *,
    assignee_email: str = "",
    product: str = "",
    priority: str = "normal",
    status: str = "new",
    dsn: str | None = None,
) -> int:
    """Open a ticket (creating the requester as an end-user if needed); its id."""
    with _postgres("tickets", dsn) as conn:
        conn.execute(
            "INSERT INTO users (name, email) VALUES (%s, %s) ON CONFLICT (email) DO NOTHING",
            (requester_email.split("@")[0].replace(".", " ").title(), requester_email),
        )
        row = conn.execute(
            "INSERT INTO tickets (subject, description, status, priority, product, requester_id, requester_email,"
            " assignee_email, group_id, access_groups)"
            " VALUES (%s, %s, %s, %s, %s, (SELECT id FROM users WHERE email = %s), %s, %s,"
            " (SELECT id FROM groups WHERE name = %s), %s) RETURNING id",
            (
                subject,
                description,
                status,
                priority,
                product,
                requester_email,
                requester_email,
                assignee_email,
                groups[0] if groups else None,
                list(groups),
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])


def add_ticket_comment(
    ticket_id: int, author_email: str, body: str, *, public: bool = True, dsn: str | None = None
) -> int:
    with _postgres("tickets", dsn) as conn:
        row = conn.execute(
            "INSERT INTO ticket_comments (ticket_id, author_email, body, public) VALUES (%s, %s, %s, %s) RETURNING id",
            (ticket_id, author_email, body, public),
        ).fetchone()
        assert row is not None
        conn.execute("UPDATE tickets SET updated_at = now() WHERE id = %s", (ticket_id,))
        return int(row[0])


def edit_ticket(ticket_id: int, *, description: str, dsn: str | None = None) -> None:
    with _postgres("tickets", dsn) as conn:
        conn.execute("UPDATE tickets SET description = %s WHERE id = %s", (description, ticket_id))


def edit_ticket_comment(comment_id: int, body: str, *, dsn: str | None = None) -> None:
    with _postgres("tickets", dsn) as conn:
        conn.execute("UPDATE ticket_comments SET body = %s WHERE id = %s", (body, comment_id))


def delete_ticket_comment(comment_id: int, *, dsn: str | None = None) -> None:
    with _postgres("tickets", dsn) as conn:
        conn.execute("DELETE FROM ticket_comments WHERE id = %s", (comment_id,))


def close_ticket(ticket_id: int, *, status: str = "solved", dsn: str | None = None) -> None:
    if status not in ("solved", "closed"):
        raise ValueError(f"close_ticket sets 'solved' or 'closed', not {status!r}")
    with _postgres("tickets", dsn) as conn:
        conn.execute("UPDATE tickets SET status = %s, updated_at = now() WHERE id = %s", (status, ticket_id))


def set_ticket_description(ticket_id: int, description: str, *, dsn: str | None = None) -> None:
    with _postgres("tickets", dsn) as conn:
        conn.execute("UPDATE tickets SET description = %s, updated_at = now() WHERE id = %s", (description, ticket_id))


def set_ticket_groups(ticket_id: int, groups: Sequence[str], *, dsn: str | None = None) -> None:
    with _postgres("tickets", dsn) as conn:
        conn.execute(
            "UPDATE tickets SET access_groups = %s, updated_at = now() WHERE id = %s", (list(groups), ticket_id)
        )


def delete_ticket(ticket_id: int, *, dsn: str | None = None) -> None:
    """Delete the ticket's comments, then the ticket (explicitly, not through the cascade)."""
    with _postgres("tickets", dsn) as conn:
        conn.execute("DELETE FROM ticket_comments WHERE ticket_id = %s", (ticket_id,))
        conn.execute("DELETE FROM tickets WHERE id = %s", (ticket_id,))


# -- CRM (PostgreSQL) ---------------------------------------------------------------------------


def add_contact(
    first_name: str,
    last_name: str,
    email: str,
    groups: Sequence[str] = ("sales",),
    *,
    account_id: int | None = None,
    title: str = "",
    phone: str = "",
    lifecycle_stage: str = "lead",
    dsn: str | None = None,
) -> int:
    with _postgres("crm", dsn) as conn:
        row = conn.execute(
            "INSERT INTO contacts (account_id, first_name, last_name, email, phone, title, lifecycle_stage,"
            " access_groups) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (account_id, first_name, last_name, email, phone, title, lifecycle_stage, list(groups)),
        ).fetchone()
        assert row is not None
        return int(row[0])


def delete_contact(contact_id: int, *, dsn: str | None = None) -> None:
    """Delete the contact's notes, then the contact."""
    with _postgres("crm", dsn) as conn:
        conn.execute("DELETE FROM notes WHERE contact_id = %s", (contact_id,))
        conn.execute("DELETE FROM contacts WHERE id = %s", (contact_id,))


def add_note(
    contact_id: int,
    author_email: str,
    body: str,
    *,
    title: str = "",
    kind: str = "note",
    groups: Sequence[str] | None = None,
    dsn: str | None = None,
) -> int:
    """A note about a contact; account and groups default to the contact's."""
    with _postgres("crm", dsn) as conn:
        contact = conn.execute("SELECT account_id, access_groups FROM contacts WHERE id = %s", (contact_id,)).fetchone()
        if contact is None:
            raise LookupError(f"CRM contact {contact_id} does not exist")
        row = conn.execute(
            "INSERT INTO notes (account_id, contact_id, author_email, kind, title, body, access_groups)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                contact[0],
                contact_id,
                author_email,
                kind,
                title,
                body,
                list(groups) if groups is not None else contact[1],
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])


def update_note(
    note_id: int,
    *,
    body: str | None = None,
    title: str | None = None,
    groups: Sequence[str] | None = None,
    dsn: str | None = None,
) -> None:
    """Change the given fields of a note; the others stay as they are."""
    with _postgres("crm", dsn) as conn:
        conn.execute(
            "UPDATE notes SET body = COALESCE(%s, body), title = COALESCE(%s, title),"
            " access_groups = COALESCE(%s, access_groups) WHERE id = %s",
            (body, title, list(groups) if groups is not None else None, note_id),
        )


def delete_note(note_id: int, *, dsn: str | None = None) -> None:
    with _postgres("crm", dsn) as conn:
        conn.execute("DELETE FROM notes WHERE id = %s", (note_id,))
