"""Write generated tickets and CRM rows into PostgreSQL with COPY, a batch per commit.

Ids are reserved from each table's own sequence first, so that child rows (comments, notes) can
name their parents inside the same COPY batch and later inserts with default ids never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from streams.sources.batches import batches
from streams.sources.people import STAFF_TEAMS, People
from streams.sources.seed_crm import CrmSeed, NoteSeed
from streams.sources.seed_tickets import TicketSeed

BATCH_ROWS = 1000
Conn = psycopg.Connection[Any]


def reset_tickets(conn: Conn) -> None:
    conn.execute("TRUNCATE ticket_comments, tickets, users, groups RESTART IDENTITY CASCADE")
    conn.commit()


def reset_crm(conn: Conn) -> None:
    conn.execute("TRUNCATE notes, contacts, accounts RESTART IDENTITY CASCADE")
    conn.commit()


def reserve_ids(conn: Conn, table: str, count: int) -> list[int]:
    rows = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table, count)
    ).fetchall()
    return [int(row[0]) for row in rows]


def ensure_ticket_users(conn: Conn, people: People) -> dict[str, int]:
    """Insert missing agents (staff) and end-users (customers); email -> users.id."""
    rows = [(p.name, p.email, "admin" if p.team == "exec" else "agent") for p in people.staff]
    rows += [(p.name, p.email, "end-user") for p in people.customers]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO users (name, email, role) VALUES (%s, %s, %s) ON CONFLICT (email) DO NOTHING", rows
        )
        cur.executemany(
            "INSERT INTO groups (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", [(team,) for team in STAFF_TEAMS]
        )
    conn.commit()
    return {email: int(i) for email, i in conn.execute("SELECT email, id FROM users").fetchall()}


def write_tickets(
    conn: Conn, tickets: Iterable[TicketSeed], people: People, advance: Callable[[int], None]
) -> dict[str, int]:
    users = ensure_ticket_users(conn, people)
    groups = {name: int(i) for name, i in conn.execute("SELECT name, id FROM groups").fetchall()}
    counts = {
        "tickets.users": len(people.staff) + len(people.customers),
        "tickets.tickets": 0,
        "tickets.ticket_comments": 0,
    }
    for batch in batches(tickets, BATCH_ROWS):
        ids = reserve_ids(conn, "tickets", len(batch))
        comments = 0
        with conn.cursor() as cur:
            with cur.copy(
                "COPY tickets (id, subject, description, status, priority, product, requester_id,"
                " requester_email, assignee_email, group_id, access_groups, created_at, updated_at)"
                " FROM STDIN"
            ) as copy:
                for ticket_id, t in zip(ids, batch, strict=True):
                    copy.write_row(
                        (
                            ticket_id,
                            t.subject,
                            t.description,
                            t.status,
                            t.priority,
                            t.product,
                            users.get(t.requester.email),
                            t.requester.email,
                            t.assignee.email if t.assignee else "",
                            groups.get(t.group),
                            list(t.groups),
                            t.created_at,
                            t.updated_at,
                        )
                    )
            with cur.copy(
                "COPY ticket_comments (ticket_id, author_email, body, public, created_at) FROM STDIN"
            ) as copy:
                for ticket_id, t in zip(ids, batch, strict=True):
                    for c in t.comments:
                        copy.write_row((ticket_id, c.author.email, c.body, c.public, c.created_at))
                        comments += 1
        conn.commit()
        counts["tickets.tickets"] += len(batch)
        counts["tickets.ticket_comments"] += comments
        advance(len(batch))
    return counts


def write_crm(conn: Conn, crm: CrmSeed, notes: Iterable[NoteSeed], advance: Callable[[int], None]) -> dict[str, int]:
    accounts = _ensure_accounts(conn, crm)
    counts = {"crm.accounts": len(accounts), "crm.contacts": 0, "crm.notes": 0}
    contact_ids: list[int] = []
    for batch in batches(crm.contacts, BATCH_ROWS):
        ids = reserve_ids(conn, "contacts", len(batch))
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY contacts (id, account_id, first_name, last_name, email, phone, title, lifecycle_stage,"
                " access_groups, created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            for contact_id, c in zip(ids, batch, strict=True):
                p = c.person
                copy.write_row(
                    (
                        contact_id,
                        accounts.get(p.domain),
                        p.first_name,
                        p.last_name,
                        p.email,
                        p.phone,
                        p.title,
                        c.lifecycle_stage,
                        list(c.groups),
                        c.created_at,
                        c.created_at,
                    )
                )
        conn.commit()
        contact_ids += ids
        counts["crm.contacts"] += len(batch)
        advance(len(batch))
    for note_batch in batches(notes, BATCH_ROWS):
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY notes (account_id, contact_id, author_email, kind, title, body, access_groups, created_at)"
                " FROM STDIN"
            ) as copy,
        ):
            for n in note_batch:
                contact = crm.contacts[n.contact_index]
                copy.write_row(
                    (
                        accounts.get(contact.person.domain),
                        contact_ids[n.contact_index],
                        n.author.email,
                        n.kind,
                        n.title,
                        n.body,
                        list(n.groups),
                        n.created_at,
                    )
                )
        conn.commit()
        counts["crm.notes"] += len(note_batch)
        advance(len(note_batch))
    return counts


def _ensure_accounts(conn: Conn, crm: CrmSeed) -> dict[str, int]:
    """One account per company, reused when a previous seed created it; domain -> accounts.id."""
    existing = {name: int(i) for name, i in conn.execute("SELECT name, id FROM accounts").fetchall()}
    ids: dict[str, int] = {}
    for account in crm.accounts:
        if account.name not in existing:
            row = conn.execute(
                "INSERT INTO accounts (name, industry, website) VALUES (%s, %s, %s) RETURNING id",
                (account.name, account.industry, f"https://www.{account.domain}"),
            ).fetchone()
            assert row is not None
            existing[account.name] = int(row[0])
        ids[account.domain] = existing[account.name]
    conn.commit()
    return ids
