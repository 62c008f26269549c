"""The source edits' transactions, without a database: a wiki edit is committed only when it completes."""

from __future__ import annotations

from typing import Any

import pytest

from streams.sources import edits


class _Cursor:
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.lastrowid = 7

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: Any = None) -> int:
        self.conn.log.append(sql.split()[0])
        if self.conn.fail_on and sql.startswith(self.conn.fail_on):
            raise RuntimeError("the database refused")
        return 1

    def fetchone(self) -> tuple[int]:
        return (3,)


class _Connection:
    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.log: list[str] = []

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def commit(self) -> None:
        self.log.append("commit")

    def close(self) -> None:
        self.log.append("close")


def _fake_wiki(monkeypatch: pytest.MonkeyPatch, conn: _Connection) -> None:
    monkeypatch.setattr(edits, "_wiki", lambda dsn: conn)


def test_a_wiki_edit_commits_once_it_is_done_then_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _Connection()
    _fake_wiki(monkeypatch, conn)
    assert edits.delete_wiki_page(5) == 1
    assert conn.log == ["DELETE", "DELETE", "commit", "close"]


def test_a_failed_wiki_edit_is_closed_uncommitted(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _Connection(fail_on="DELETE FROM page")
    _fake_wiki(monkeypatch, conn)
    with pytest.raises(RuntimeError):
        edits.delete_wiki_page(5)
    assert conn.log == ["DELETE", "DELETE", "close"]  # the revisions' delete is never committed


def test_a_wiki_read_returns_its_answer_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _Connection()
    _fake_wiki(monkeypatch, conn)
    assert edits.page_length(5) == 3
    assert conn.log[-1] == "close"
