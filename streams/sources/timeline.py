"""The fixed clock that seeded rows are dated against, so that a seed's content is reproducible."""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
