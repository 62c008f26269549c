"""The real local stack for integration tests: started (and connectors registered) when it is not
already healthy, and stopped at the end only when this session started it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.settings import Settings, get_settings
from streams.stack import connectors, stack


def _progress(line: str) -> None:
    print(line, flush=True)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Settings]:
    settings = get_settings()
    started = stack.up(settings, _progress)  # a no-op for servers that are already running
    try:
        connectors.register(settings, _progress)
        yield settings
    finally:
        if started:
            stack.down(settings, _progress, only=started)
