"""What a user gets without any setting: the real applications the local stack runs (MediaWiki, Request
Tracker, Tryton) are the configured sources, and the example sources (wiki, tickets, crm) only where
STREAMS_EXAMPLE_SOURCES is on or STREAMS_SOURCE_DSNS names them. The test session itself runs with the
example sources and no application (tests/conftest.py), so each test here sets the environment it
means."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.settings import Settings, get_settings
from streams.stack import connectors


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A user's environment: neither variable set."""
    monkeypatch.delenv("STREAMS_STACK_APPS", raising=False)
    monkeypatch.delenv("STREAMS_EXAMPLE_SOURCES", raising=False)
    monkeypatch.delenv("STREAMS_SOURCE_DSNS", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_by_default_the_applications_are_the_sources_and_the_examples_are_off(no_settings: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.stack_apps == ("mediawiki", "request-tracker", "tryton")
    assert settings.sources == ("mediawiki", "rt", "tryton")
    assert set(connectors.load(settings)) == {"mediawiki", "rt", "tryton"}


def test_the_example_sources_are_configured_by_their_setting(no_settings: pytest.MonkeyPatch) -> None:
    no_settings.setenv("STREAMS_EXAMPLE_SOURCES", "1")
    assert Settings().sources == ("crm", "mediawiki", "rt", "tickets", "tryton", "wiki")
    no_settings.setenv("STREAMS_STACK_APPS", "none")
    assert Settings().stack_apps == ()
    assert Settings().sources == ("crm", "tickets", "wiki")
    assert set(connectors.load(Settings())) == {"crm", "tickets", "wiki"}


def test_an_example_source_whose_dsn_is_named_is_configured_without_the_setting(
    no_settings: pytest.MonkeyPatch,
) -> None:
    no_settings.setenv("STREAMS_STACK_APPS", "none")
    assert Settings().sources == ()
    no_settings.setenv("STREAMS_SOURCE_DSNS", json.dumps({"tickets": "postgresql://u:p@db:5432/tickets"}))
    assert Settings().sources == ("tickets",)


def test_the_bench_skips_the_scenarios_that_write_the_example_sources_when_they_are_off(
    no_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streams.bench.commands import bench

    no_settings.setenv("STREAMS_STACK_APPS", "none")
    report = tmp_path / "bench.json"
    result = CliRunner().invoke(bench, ["--only", "steady,forget", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "steady       skipped: it writes the example sources" in result.output
    assert "STREAMS_EXAMPLE_SOURCES=1" in result.output
    figures = json.loads(report.read_text())
    assert "skipped" in figures["steady"] and "skipped" in figures["forget"]


def test_eval_load_into_the_example_tickets_needs_them_configured(
    no_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streams.eval.commands import eval_

    (tmp_path / "corpus.jsonl").write_text('{"_id": "ticket:a", "title": "A", "text": "alpha"}\n')
    result = CliRunner().invoke(eval_, ["load", str(tmp_path), "--source", "tickets", "--group", "eval-g"])
    assert result.exit_code == 2
    assert "the example source tickets is not configured" in result.output


def test_seed_refuses_an_example_source_that_is_not_configured(no_settings: pytest.MonkeyPatch) -> None:
    from streams.sources.commands import seed

    result = CliRunner().invoke(seed, ["--docs", "3", "--source", "tickets"])
    assert result.exit_code == 2
    assert "tickets: an example source, not configured" in result.output


def test_the_example_sources_not_configured_are_named_in_the_order_asked() -> None:
    from streams.sources.seed import examples_not_configured

    assert examples_not_configured(["mediawiki", "rt", "tryton"]) == ["wiki", "tickets", "crm"]
    assert examples_not_configured(["tickets"], ["crm", "rt", "tickets"]) == ["crm"]
    assert examples_not_configured(["wiki", "tickets", "crm"]) == []
