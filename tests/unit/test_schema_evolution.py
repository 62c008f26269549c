"""The Avro schemas evolve compatibly: each schema's first published version (tests/unit/fixtures/schemas,
taken from git history) and the current one, checked by writing records with one and reading them with
the other (fastavro's schema resolution, the rules a schema registry applies).

- Backward (the current schema reads what an older writer wrote) for every schema: a worker loads the
  whole ledger, consumers replay old receipts and freshness reports, and after an upgrade the indexer
  reads the routed changes an older router left on the repartition topic.
- Forward too (an older reader reads what the current writer writes) for the receipts and freshness
  reports, whose readers are other teams' tools that upgrade on their own schedule. The ledger is not
  forward compatible on purpose: its entries became keyed hashes (`identifier` nullable), so every
  worker must run the new code before the first hash-only entry is written (README, "Forgetting a person").
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import parse_schema
from fastavro.utils import generate_many

from streams.settings import PROJECT_ROOT

OLD = Path(__file__).parent / "fixtures" / "schemas"
FULL = {"deletion_receipt", "freshness_report"}


def _schema(path: Path) -> dict[str, object]:
    return parse_schema(json.loads(path.read_text()))


def _readable(writer: dict[str, object], reader: dict[str, object], count: int = 25) -> None:
    for record in generate_many(writer, count):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, writer, record)
        buffer.seek(0)
        fastavro.schemaless_reader(buffer, writer, reader)


@pytest.mark.parametrize("old", sorted(OLD.glob("*.avsc")), ids=lambda path: path.stem)
def test_the_current_schema_reads_what_older_writers_wrote(old: Path) -> None:
    current = _schema(PROJECT_ROOT / "schemas" / f"{old.name.split('.')[0]}.avsc")
    _readable(_schema(old), current)


@pytest.mark.parametrize("name", sorted(FULL))
def test_older_readers_read_what_the_current_schema_writes(name: str) -> None:
    for old in OLD.glob(f"{name}.*.avsc"):
        _readable(_schema(PROJECT_ROOT / "schemas" / f"{name}.avsc"), _schema(old))


def test_a_change_that_breaks_readers_is_caught() -> None:
    """The check can fail: a new required field without a default cannot be read from old records."""
    old = _schema(OLD / "deletion_receipt.v1.avsc")
    broken = json.loads((PROJECT_ROOT / "schemas" / "deletion_receipt.avsc").read_text())
    broken["fields"].append({"name": "approved_by", "type": "string"})
    with pytest.raises(fastavro.read.SchemaResolutionError):
        _readable(old, parse_schema(broken))
