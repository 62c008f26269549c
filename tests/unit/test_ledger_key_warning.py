"""A worker started with the public default ledger key says so, once, and how to set one."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import SecretStr

from streams.app import create_app
from streams.settings import Settings


def _start_warnings(settings: Settings, caplog: pytest.LogCaptureFixture) -> list[str]:
    service = create_app(settings).worker
    with caplog.at_level(logging.WARNING, logger="streams.agents.service"):
        asyncio.run(service.on_start())
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "STREAMS_LEDGER_KEY" in r.getMessage()
    ]


def test_the_default_ledger_key_is_warned_about_at_start(caplog: pytest.LogCaptureFixture) -> None:
    (warning,) = _start_warnings(Settings(), caplog)
    assert "public default" in warning and "forgotten people" in warning
    assert "Set STREAMS_LEDGER_KEY" in warning


def test_a_key_of_ones_own_starts_without_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert _start_warnings(Settings(ledger_key=SecretStr("a-secret-of-this-deployment")), caplog) == []
