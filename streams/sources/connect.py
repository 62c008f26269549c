"""Connections to the three source databases, with errors that name the DSN that failed."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql
import pymysql.cursors
from pydantic import SecretStr

from streams.errors import StreamsError
from streams.settings import redact_url

# A DSN from the settings is a SecretStr (it carries a password): it is unwrapped here, where the
# connection is opened, and only its redacted form ever reaches a message.
Dsn = str | SecretStr


class SourceUnavailable(StreamsError):
    """A source database could not be reached (or its DSN is not one we can use)."""

    stage = "source"


def _reveal(dsn: Dsn) -> str:
    return dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn


def redact(dsn: Dsn) -> str:
    """The DSN without its password, for messages."""
    return redact_url(_reveal(dsn))


def connect_postgres(dsn: Dsn, *, name: str = "source") -> psycopg.Connection[Any]:
    url = _reveal(dsn)
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        # libpq's message names the host and port, never the password (tests/unit/test_secrets.py checks).
        raise SourceUnavailable(f"cannot connect to the {name} database at {redact(url)}: {exc}") from exc


def connect_mariadb(dsn: Dsn, *, name: str = "wiki") -> pymysql.connections.Connection[Any]:
    parts = urlsplit(_reveal(dsn))
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
