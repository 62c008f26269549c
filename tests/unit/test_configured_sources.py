"""A source is configuration: its DSN comes from STREAMS_SOURCE_DSNS, the configured list from the
mappings in the connectors folder, its connector's placeholders from its own DSN, and verify reads
its rows whatever the database engine. The `kb` source of tests/kb_source.py is named nowhere in
the package."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from pydantic import ValidationError

from streams.elastic.verify_index import _row_change_hash, source_pages
from streams.pipeline.document_mapping import load_mappings
from streams.settings import Settings, SettingsError, get_settings
from streams.sources import read_rows
from streams.sources.commands import seed_sources
from streams.sources.read_rows import SourceRows
from streams.stack import connectors
from streams.stack.stack import source_dsns
from tests import kb_source

KB_DSN = "postgresql://kb_reader:kbSecret1@db.example.com:5433/knowledge"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return kb_source.write_connectors_folder(tmp_path / "connectors")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Iterator[Settings]:
    monkeypatch.setenv("STREAMS_CONNECTORS_DIR", str(folder))
    monkeypatch.setenv("STREAMS_SOURCE_DSNS", json.dumps({"kb": KB_DSN}))
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        get_settings.cache_clear()


# -- the DSN of a source ---------------------------------------------------------------------------


def test_a_new_sources_dsn_comes_from_the_environment(env: Settings) -> None:
    assert env.dsn("kb") == KB_DSN
    assert env.redacted_dsn("kb") == "postgresql://kb_reader:***@db.example.com:5433/knowledge"
    assert "kbSecret1" not in repr(env)
    # The shipped sources keep the local stack's databases.
    assert env.dsn("tickets") == Settings().dsn("tickets")


def test_a_source_without_a_dsn_names_the_setting_to_set() -> None:
    with pytest.raises(SettingsError, match="STREAMS_SOURCE_DSNS") as raised:
        Settings().dsn("kb")
    assert '"kb"' in str(raised.value)


def test_source_dsns_win_over_the_older_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMS_TICKETS_DSN", "postgresql://old:pw@old-host:5432/tickets")
    assert Settings().dsn("tickets") == "postgresql://old:pw@old-host:5432/tickets"
    monkeypatch.setenv("STREAMS_SOURCE_DSNS", json.dumps({"tickets": "postgresql://new:pw@new-host:5432/tickets"}))
    assert Settings().dsn("tickets") == "postgresql://new:pw@new-host:5432/tickets"


SHORT_DSN = "pg://u:kbSecret1@h/kb"  # short: pydantic would elide the middle of a long value anyway


@pytest.mark.parametrize("raw", [json.dumps([SHORT_DSN]), json.dumps({"kb": [SHORT_DSN]})])
def test_a_malformed_source_dsns_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("STREAMS_SOURCE_DSNS", raw)
    with pytest.raises(ValidationError, match="source_dsns") as raised:
        Settings()
    assert "kbSecret1" not in str(raised.value)


# -- the configured list ---------------------------------------------------------------------------


def test_the_configured_sources_are_the_mappings_of_the_connectors_folder(env: Settings, folder: Path) -> None:
    assert Settings(connectors_dir=None).sources == ("crm", "tickets", "wiki")
    assert env.sources == ("crm", "kb", "tickets", "wiki")
    assert load_mappings(folder).names == env.sources
    # A copy with another folder lists that folder's sources, not the first one's.
    (folder / "crm.mapping.yaml").unlink()
    assert env.sources == ("kb", "tickets", "wiki")


def test_stack_status_lists_every_configured_sources_dsn_redacted(env: Settings) -> None:
    found = source_dsns(env)
    assert found["kb"] == "postgresql://kb_reader:***@db.example.com:5433/knowledge"
    assert set(found) == {"crm", "kb", "tickets", "wiki"}
    without = env.model_copy(update={"source_dsns": {}})
    assert source_dsns(without)["kb"] is None


def test_seed_fills_the_sources_it_knows_and_says_which_it_leaves(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert seed_sources(env.sources, None) == ("wiki", "tickets", "crm")
    assert "kb: not seeded" in capsys.readouterr().err
    with pytest.raises(click.BadParameter, match="seed cannot fill kb"):
        seed_sources(env.sources, "tickets,kb")
    assert seed_sources(env.sources, "crm") == ("crm",)


# -- the connector's placeholders ------------------------------------------------------------------


def test_a_connector_fills_its_placeholders_from_its_own_sources_dsn(env: Settings) -> None:
    kb = connectors.load(env)["kb"]
    assert (kb["database.hostname"], kb["database.port"]) == ("db.example.com", "5433")
    assert (kb["database.user"], kb["database.password"], kb["database.dbname"]) == (
        "kb_reader",
        "kbSecret1",
        "knowledge",
    )
    assert kb["signal.data.collection"] == "public.debezium_signal"
    tickets = connectors.load(env)["tickets"]
    assert tickets["database.dbname"] == "tickets" and tickets["database.port"] == "15432"


def test_connector_hosts_apply_to_a_new_source(env: Settings) -> None:
    hosted = env.model_copy(update={"connector_hosts": {"kb": "kb-db"}})
    assert connectors.load(hosted)["kb"]["database.hostname"] == "kb-db"


def test_the_older_placeholders_still_render(env: Settings) -> None:
    config = {"a": "${tickets_dsn.dbname}", "b": "${kb_dsn.host}:${kb_dsn.port}", "c": "${signal_table}"}
    assert connectors.render(config, env) == {"a": "tickets", "b": "db.example.com:5433", "c": "debezium_signal"}


def test_placeholders_that_name_nothing_fail(env: Settings) -> None:
    with pytest.raises(connectors.StackError, match="outside a <source>"):
        connectors.render({"a": "${source_dsn.host}"}, env)
    with pytest.raises(connectors.StackError, match="names no settings field"):
        connectors.render({"a": "${no_such_field}"}, env)
    with pytest.raises(connectors.StackError, match="only a DSN has parts"):
        connectors.render({"a": "${signal_table.host}"}, env)
    with pytest.raises(SettingsError, match="STREAMS_SOURCE_DSNS"):
        connectors.render({"a": "${source_dsn.host}"}, env, source="nowhere")


# -- verify reads a configured source's rows, on either engine ----------------------------------------


class SqliteCursor:
    """The slice of a psycopg or pymysql cursor that SourceRows uses, over sqlite (which takes the
    same SELECTs, with either quoting). sqlite has no arrays: they are stored as JSON text."""

    def __init__(self, conn: sqlite3.Connection, log: list[str]) -> None:
        self.cursor = conn.cursor()
        self.log = log

    def __enter__(self) -> SqliteCursor:
        return self

    def __exit__(self, *_: object) -> None:
        self.cursor.close()

    def execute(self, sql: str | bytes, params: Sequence[Any] = ()) -> SqliteCursor:
        text = sql.decode() if isinstance(sql, bytes) else sql
        self.log.append(text)
        self.cursor.execute(text.replace("%s", "?"), tuple(params))
        return self

    def fetchall(self) -> list[dict[str, Any]]:
        names = [d[0] for d in self.cursor.description]
        return [
            {
                n: json.loads(v) if isinstance(v, str) and v.startswith("[") else v
                for n, v in zip(names, row, strict=True)
            }
            for row in self.cursor.fetchall()
        ]


class SqliteConnection:
    def __init__(self, conn: sqlite3.Connection, engine: str) -> None:
        self.conn, self.engine, self.log = conn, engine, []  # type: list[str]
        self.autocommit = False

    def cursor(self, *_: Any, **__: Any) -> SqliteCursor:
        return SqliteCursor(self.conn, self.log)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        pass


UPDATED = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def kb_database() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", detect_types=sqlite3.PARSE_DECLTYPES)
    sqlite3.register_converter("timestamptz", lambda raw: datetime.fromisoformat(raw.decode()))
    conn.executescript(
        "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, body TEXT, category TEXT,"
        " author_email TEXT, access_groups TEXT, updated_at timestamptz);"
        "CREATE TABLE article_comments (id INTEGER PRIMARY KEY, article_id INTEGER, author_email TEXT, body TEXT);"
    )
    for n in (1, 2, 3):
        conn.execute(
            "INSERT INTO articles VALUES (?, ?, ?, 'howto', ?, '[\"support\"]', ?)",
            (n, f"Article {n}", f"How to do thing {n}.", f"author{n}@example.com", UPDATED.isoformat()),
        )
    conn.execute("INSERT INTO article_comments VALUES (10, 1, 'reader@example.com', 'It worked.')")
    conn.execute("INSERT INTO article_comments VALUES (11, 3, 'reader@example.com', 'It did not.')")
    return conn


@pytest.fixture
def kb_engine(monkeypatch: pytest.MonkeyPatch) -> dict[str, SqliteConnection]:
    """Replaces both drivers' connect functions: records which engine SourceRows chose for a DSN."""
    opened: dict[str, SqliteConnection] = {}

    def connect(engine: str) -> Any:
        def open_it(dsn: str, *, name: str) -> SqliteConnection:
            opened[name] = SqliteConnection(kb_database(), engine)
            return opened[name]

        return open_it

    monkeypatch.setattr(read_rows, "connect_postgres", connect("postgresql"))
    monkeypatch.setattr(read_rows, "connect_mariadb", connect("mariadb"))
    return opened


@pytest.mark.parametrize(
    ("dsn", "engine", "quote"),
    [("postgresql://u:p@h:5432/kb", "postgresql", '"articles"'), ("mysql://u:p@h:3306/kb", "mariadb", "`articles`")],
)
def test_verify_reads_a_configured_sources_rows_through_its_mapping(
    folder: Path, kb_engine: dict[str, SqliteConnection], dsn: str, engine: str, quote: str
) -> None:
    settings = Settings(connectors_dir=folder, source_dsns={"kb": dsn})
    mappings = load_mappings(folder)
    articles = next(d for s in mappings.sources if s.source == "kb" for d in s.documents)
    with SourceRows(settings, "kb", page_rows=2) as rows:
        pages = list(source_pages(rows, mappings, "kb", articles))
    assert kb_engine["kb"].engine == engine
    assert any(quote in sql for sql in kb_engine["kb"].log)
    assert [sorted(page) for page in pages] == [["kb/article/1", "kb/article/2"], ["kb/article/3"]]
    first, third = pages[0]["kb/article/1"], pages[1]["kb/article/3"]
    assert first.parts == {"article_comments/10"} and pages[0]["kb/article/2"].parts == set()
    # The row as Debezium publishes it (a timestamptz is an ISO string in UTC) hashes the same.
    published = {
        "id": 1,
        "title": "Article 1",
        "body": "How to do thing 1.",
        "category": "howto",
        "author_email": "author1@example.com",
        "access_groups": ["support"],
        "updated_at": "2026-11-20T09:30:00.000000Z",
    }
    assert first.hashes["root"] == _row_change_hash(mappings, "kb", "articles", "id", published)
    assert first.hashes["article_comments/10"] != third.hashes["article_comments/11"]


def test_verify_needs_the_sources_dsn(folder: Path, kb_engine: dict[str, SqliteConnection]) -> None:
    with pytest.raises(SettingsError, match="STREAMS_SOURCE_DSNS"):
        SourceRows(Settings(connectors_dir=folder), "kb")
    assert kb_engine == {}
