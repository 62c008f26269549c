"""Hand-built part changes for the unit tests: the fields every change needs, with the defaults the tests
share, and the few fields a test cares about given by name."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from streams.records import ChunkText, PartChange, TextFormat

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def part_change(
    document_id: str,
    table: str,
    version: int = 1,
    *,
    part_id: str = "root",
    source: str | None = None,
    deleted: bool = False,
    commit_ts: datetime = T0,
    **fields: Any,
) -> PartChange:
    """A change to one part of ``document_id``: its source is the id's first segment unless given, and
    any part but ``root`` is a child."""
    return PartChange(
        source=source or document_id.split("/", 1)[0],
        table=table,
        document_id=document_id,
        part_id=part_id,
        role="root" if part_id == "root" else "child",
        deleted=deleted,
        version=version,
        commit_ts=commit_ts,
        **fields,
    )


def chunker(text: str, text_format: TextFormat) -> list[ChunkText]:
    """One chunk per paragraph."""
    return [ChunkText(number, paragraph) for number, paragraph in enumerate(text.split("\n\n"))]


def nobody(subjects: Iterable[str]) -> bool:
    """No one is forgotten."""
    return False
