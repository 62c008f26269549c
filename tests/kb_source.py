"""A source defined by configuration alone: a small knowledge base (`kb`) in PostgreSQL, with articles
and their comments. The tests write its files into a folder of their own, beside a copy of the
shipped ones, and point STREAMS_CONNECTORS_DIR and STREAMS_SOURCE_DSNS at them: nothing in the
package names it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from streams.resources import connectors_dir
from streams.settings import Settings

SOURCE = "kb"

# Modelled on connectors/tickets.json: its own name, topic prefix, slot and publication, and the
# DSN placeholders that read this source's own DSN.
CONNECTOR: dict[str, Any] = {
    "name": SOURCE,
    "description": "Knowledge base (PostgreSQL, schema public) -> topics kb.public.<table>.",
    "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "database.hostname": "${source_dsn.host}",
        "database.port": "${source_dsn.port}",
        "database.user": "${source_dsn.user}",
        "database.password": "${source_dsn.password}",
        "database.dbname": "${source_dsn.dbname}",
        "topic.prefix": SOURCE,
        "schema.include.list": "public",
        "plugin.name": "pgoutput",
        "slot.name": "streams_kb",
        "publication.name": "streams_kb",
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial",
        "heartbeat.interval.ms": "5000",
        "signal.data.collection": "public.${signal_table}",
        "signal.enabled.channels": "source",
        "heartbeat.action.query": (
            "INSERT INTO public.streams_heartbeat (id, beat_at) VALUES (1, now())"
            " ON CONFLICT (id) DO UPDATE SET beat_at = EXCLUDED.beat_at"
        ),
        "tombstones.on.delete": "true",
        "provide.transaction.metadata": "true",
        "decimal.handling.mode": "double",
        "time.precision.mode": "connect",
        "topic.creation.default.partitions": "${topic_partitions}",
        "topic.creation.default.replication.factor": "${topic_replication_factor}",
        "poll.interval.ms": "50",
    },
}

# Modelled on connectors/tickets.mapping.yaml.
MAPPING = """\
source: kb
documents:
  - table: articles
    kind: article
    key: id
    title: title
    body: {column: body, format: plain}
    metadata: [category, updated_at]
    subjects: [{kind: email, column: author_email}]
    groups: {column: access_groups}
    link: "https://kb.example.com/articles/{id}"
    children:
      - table: article_comments
        key: id
        parent: article_id
        mode: each
        body: {column: body, format: plain}
        subjects: [{kind: email, column: author_email}]
"""

SCHEMA = """\
CREATE TABLE IF NOT EXISTS articles (
  id BIGSERIAL PRIMARY KEY,
  title TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '',
  category TEXT NOT NULL DEFAULT '',
  author_email TEXT NOT NULL DEFAULT '',
  access_groups TEXT[] NOT NULL DEFAULT '{support}',
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS article_comments (
  id BIGSERIAL PRIMARY KEY,
  article_id BIGINT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
  author_email TEXT NOT NULL DEFAULT '',
  body TEXT NOT NULL
);
ALTER TABLE articles REPLICA IDENTITY FULL;
ALTER TABLE article_comments REPLICA IDENTITY FULL;
CREATE TABLE IF NOT EXISTS debezium_signal (
  id VARCHAR(64) PRIMARY KEY,
  type VARCHAR(32) NOT NULL,
  data TEXT NULL
);
CREATE TABLE IF NOT EXISTS streams_heartbeat (
  id INT PRIMARY KEY,
  beat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE streams_heartbeat REPLICA IDENTITY FULL;
"""


def write_connectors_folder(folder: Path, settings: Settings | None = None) -> Path:
    """`folder` holding a copy of the shipped definitions and mappings, and the kb source's."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in connectors_dir(settings or Settings()).iterdir():
        if path.name.endswith((".json", ".mapping.yaml")):
            shutil.copy(path, folder / path.name)
    (folder / f"{SOURCE}.json").write_text(json.dumps(CONNECTOR, indent=2))
    (folder / f"{SOURCE}.mapping.yaml").write_text(MAPPING)
    return folder
