"""One log format for the worker and the commands; STREAMS_LOG_FORMAT=json is one object per line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from mode.utils.logging import setup_logging

from streams.logs import logging_config
from streams.settings import get_settings


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def json_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """STREAMS_LOG_FORMAT=json, read afresh (get_settings keeps the first Settings it built)."""
    monkeypatch.setenv("STREAMS_LOG_FORMAT", "json")
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()


def _logged_through_faust(log_format: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What a worker writes: mode (faust's worker) configures logging with the config `streams worker` passes."""
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    setup_logging(loglevel="INFO", logging_config=logging_config(log_format))  # type: ignore[arg-type]
    log = logging.getLogger("streams.agents.index_changes")
    log.info("indexed %d changes", 3)
    try:
        raise ValueError("no such index")
    except ValueError:
        log.exception("write failed")
    return stderr.getvalue().splitlines()


def test_json_is_one_object_per_line_with_time_level_logger_message_and_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = (json.loads(line) for line in _logged_through_faust("json", monkeypatch))
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "INFO",
        "logger": "streams.agents.index_changes",
        "message": "indexed 3 changes",
    }
    assert first["time"].startswith("20") and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR"
    assert "ValueError: no such index" in second["exception"] and "Traceback" in second["exception"]


def test_text_is_the_commands_format(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _logged_through_faust("text", monkeypatch)[0]
    assert line.endswith(" INFO streams.agents.index_changes: indexed 3 changes")


@pytest.mark.usefixtures("json_format")
def test_the_worker_hands_faust_the_configured_format(monkeypatch: pytest.MonkeyPatch) -> None:
    import faust

    import streams.app
    import streams.clients
    import streams.topics
    from streams.agents.commands import worker

    started: list[dict[str, Any]] = []

    class FakeApp:
        chain = type("Chain", (), {"key": lambda self: None})()
        deletion = type("Deletion", (), {"chain": chain})()
        worker = type("W", (), {"mappings": None, "search_authenticator": lambda self: None, "deletion": deletion})()

    class FakeWorker:
        def __init__(self, app: object, **options: Any) -> None:
            started.append(options)

        def execute_from_commandline(self) -> None:
            pass

    monkeypatch.setattr(streams.clients, "check_elasticsearch_login", lambda settings: None)
    monkeypatch.setattr(streams.app, "create_app", lambda settings: FakeApp())
    monkeypatch.setattr(streams.topics, "ensure_topics", lambda settings, mappings: None)
    monkeypatch.setattr(faust, "Worker", FakeWorker)
    result = CliRunner().invoke(worker, ["--loglevel", "warning"])
    assert result.exit_code == 0, result.output
    (options,) = started
    assert options["logging_config"] == logging_config("json", "WARNING")


@pytest.mark.usefixtures("json_format")
def test_the_commands_log_in_the_configured_format() -> None:
    from pythonjsonlogger.json import JsonFormatter

    from streams.cli import main

    CliRunner().invoke(main, ["freshness", "--url", "http://127.0.0.1:9", "--timeout", "1"])
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)


def test_an_unknown_format_is_refused() -> None:
    from pydantic import ValidationError

    from streams.settings import Settings

    with pytest.raises(ValidationError):
        Settings(log_format="xml")  # type: ignore[arg-type]
