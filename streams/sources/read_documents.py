"""Read which documents a source database holds (keys only), for `streams verify`.

For every mapped root table the rows' keys; for child tables their keys and parents (for `latest`
children only the newest key per parent). The SQL lives here, beside the other code that talks to
the source databases, so that the index side (`elastic/verify_index.py`) only compares.
"""

from __future__ import annotations

from typing import Any

from streams.pipeline.document_mapping import SourceMapping
from streams.records import SourceDocument
from streams.settings import Settings, SettingsError
from streams.sources.connect import SourceUnavailable, connect_mariadb, connect_postgres


def _quote(source: str, name: str) -> str:
    return f"`{name}`" if source == "wiki" else f'"{name}"'


def _dsn(settings: Settings, source: str) -> str:
    try:
        return settings.dsn(source)
    except SettingsError as exc:
        raise SourceUnavailable(str(exc)) from exc


def _query(settings: Settings, source: str, sql: str) -> list[tuple[Any, ...]]:
    dsn = _dsn(settings, source)
    if dsn.startswith(("mysql", "mariadb")):
        conn = connect_mariadb(dsn, name=source)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return [tuple(row) for row in cur.fetchall()]
        finally:
            conn.close()
    with connect_postgres(dsn, name=source) as pg:
        return [tuple(row) for row in pg.execute(sql).fetchall()]


def read_source_documents(settings: Settings, mapping: SourceMapping) -> dict[str, SourceDocument]:
    """Every document the source's rows make, keyed by document id."""
    source = mapping.source
    q = lambda name: _quote(source, name)  # noqa: E731
    documents: dict[str, SourceDocument] = {}
    for document in mapping.documents:
        for (key,) in _query(settings, source, f"SELECT {q(document.key)} FROM {q(document.table)}"):
            documents[document.document_id(source, key)] = SourceDocument()
        for child in document.children:
            if child.mode == "latest":
                sql = f"SELECT {q(child.parent)}, MAX({q(child.key)}) FROM {q(child.table)} GROUP BY {q(child.parent)}"
                for parent, newest in _query(settings, source, sql):
                    found = documents.get(document.document_id(source, parent))
                    if found is not None:
                        found.parts.add(child.table)
                        found.latest[child.table] = int(newest)
            else:
                sql = f"SELECT {q(child.key)}, {q(child.parent)} FROM {q(child.table)}"
                for key, parent in _query(settings, source, sql):
                    found = documents.get(document.document_id(source, parent))
                    if found is not None:
                        found.parts.add(f"{child.table}/{key}")
    return documents
