"""Connections to the three source databases, with errors that name the DSN that failed."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql
import pymysql.cursors

from streams.errors import StreamsError


class SourceUnavailable(StreamsError):
    """A source database could not be reached (or its DSN is not one we can use)."""

    stage = "source"


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def connect_postgres(dsn: str, *, name: str = "source") -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise SourceUnavailable(f"cannot connect to the {name} database at {redact(dsn)}: {exc}") from exc


def connect_mariadb(dsn: str, *, name: str = "wiki") -> pymysql.connections.Connection[Any]:
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise SourceUnavailable(f"the {name} DSN {redact(dsn)} is not a mysql:// URL")
    try:
        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or None,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=10,
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.err.OperationalError as exc:
        raise SourceUnavailable(f"cannot connect to the {name} database at {redact(dsn)}: {exc}") from exc
