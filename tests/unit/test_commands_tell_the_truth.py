"""Commands say what happened: bad arguments are refused by click with the option's name (no traceback,
nothing published), defaults are shown as values, receipts claim only what the lane did, and verify
honours its limit and names a backlog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner

from streams import __version__
from streams.agents import forget_commands, web
from streams.cli import COMMANDS, Seconds, choice_option, main, number_option
from streams.elastic.verify_index import CATEGORIES, Issue, SourceReport
from streams.search import MAX_K, MAX_QUERY_CHARS, print_hits, render_highlight
from streams.verify import report_json, verdict


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_version() -> None:
    result = _run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"streams {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--k", "100000", "printer"], "'--k': 100000 is not in the range 1<=x<=100"),
        (["search", "--k", "-3", "printer"], "'--k': -3 is not in the range"),
        (["search", "--k", "0", "printer"], "'--k': 0 is not in the range"),
        (["search", ""], "'QUERY': the query is empty"),
        (["search", "   "], "'QUERY': the query is empty"),
        (["search", "x" * 2001], "the limit is 2000"),
        (["search", "--source", "nosuch", "printer"], "unknown source nosuch: the configured sources are"),
        (["freshness", "--timeout", "-5"], "'--timeout': -5.0 is not in the range x>0"),
        (["freshness", "--timeout", "0"], "'--timeout': 0.0 is not in the range x>0"),
        (["forget", "ann@example.com", "--timeout", "0"], "'--timeout'"),
        (["connectors", "watch", "--interval", "-1"], "'--interval'"),
        (["stack", "down", "--timeout", "-1"], "'--timeout'"),
        (["seed", "--docs", "0"], "'--docs' / '-n': 0 is not in the range x>=1"),
        (["seed", "--seed", "1.5"], "'--seed': '1.5' is not a valid integer"),
        (["verify", "--limit", "-1"], "'--limit': -1 is not in the range x>=0"),
        (["verify", "--recheck", "-0.5"], "'--recheck': -0.5 is not in the range x>=0"),
        (["bench", "--rate", "0"], "'--rate': 0.0 is not in the range x>=0.1"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_the_cli_and_search_share_the_bounds() -> None:
    assert (MAX_K, MAX_QUERY_CHARS) == (web.MAX_K, web.MAX_QUERY_CHARS)


def _options(command: click.Command, path: str = "") -> list[tuple[str, click.Parameter]]:
    if isinstance(command, click.Group):
        return [o for name, sub in command.commands.items() for o in _options(sub, f"{path} {name}")]
    return [(f"{path} {p.name}", p) for p in command.params]


def test_every_duration_option_refuses_zero_and_negative_numbers() -> None:
    import importlib

    durations = []
    for module_name, attribute in (spec.split(":") for spec, _ in COMMANDS.values()):
        command = getattr(importlib.import_module(module_name), attribute)
        durations += [
            (name, p)
            for name, p in _options(command, attribute)
            if any(word in (p.name or "") for word in ("timeout", "interval", "stall"))
        ]
    assert len(durations) >= 6
    assert [name for name, p in durations if p.type is not Seconds] == []


def test_a_number_option_takes_the_kind_of_its_default_within_its_bounds_and_shows_the_default() -> None:
    @click.command()
    @number_option("--count", default=3, help="A count.")
    @number_option("--share", default=0.5, at_least=0, at_most=1, help="A share.")
    def command(count: int, share: float) -> None:
        click.echo(f"{count!r} {share!r}")

    runner = CliRunner()
    assert runner.invoke(command, ["--count", "7", "--share", "1"]).output == "7 1.0\n"
    assert "'--count': '7.5' is not a valid integer" in runner.invoke(command, ["--count", "7.5"]).output
    assert "'--share': 1.5 is not in the range 0<=x<=1" in runner.invoke(command, ["--share", "1.5"]).output
    shown = runner.invoke(command, ["--help"]).output
    assert "[default: 3]" in shown and "[default: 0.5; 0<=x<=1]" in shown


def test_a_choice_option_refuses_other_values_by_name_and_shows_its_default() -> None:
    @click.command()
    @choice_option("--vectors", choices=["hnsw", "int8_hnsw"], default="hnsw", help="How vectors are stored.")
    def command(vectors: str) -> None:
        click.echo(vectors)

    runner = CliRunner()
    assert runner.invoke(command, []).output == "hnsw\n"
    assert runner.invoke(command, ["--vectors", "int8_hnsw"]).output == "int8_hnsw\n"
    refused = runner.invoke(command, ["--vectors", "flat"]).output
    assert "'--vectors': 'flat' is not one of 'hnsw', 'int8_hnsw'" in refused
    assert "[default: hnsw]" in runner.invoke(command, ["--help"]).output


def test_watch_help_shows_the_default_values() -> None:
    result = _run("connectors", "watch", "--help")
    assert result.exit_code == 0
    assert "settings." not in result.output
    assert "5.0" in result.output and "30.0" in result.output and "STREAMS_WATCH_INTERVAL_S" in result.output


# -- search output --------------------------------------------------------------------------------


def test_highlights_are_bold_on_a_terminal_and_plain_elsewhere() -> None:
    assert render_highlight("the <em>printer</em> jams", tty=False) == "the printer jams"
    assert render_highlight("the <em>printer</em> jams", tty=True) == f"the {click.style('printer', bold=True)} jams"
    hit = {"source": "tickets", "title": "T", "document_id": "d", "link": "l"}
    hits: list[dict[str, object]] = [{**hit, "chunks": [{"highlights": ["a <em>b</em>"], "text": "a b"}]}]

    @click.command()
    def show() -> None:
        print_hits(hits, tty=False)

    output = CliRunner().invoke(show).output
    assert "<em>" not in output and "\x1b[" not in output and "a b" in output


# -- forget ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["not an email@@", "", "   "])
def test_forget_refuses_a_malformed_subject_before_publishing(subject: str, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[Any] = []
    monkeypatch.setattr(forget_commands, "publish_request", lambda settings, request: published.append(request))
    monkeypatch.setattr(forget_commands, "receipts_consumer", lambda settings: published.append("consumer"))
    result = _run("forget", subject, "--wait")
    assert result.exit_code == 2, result.output
    assert "Invalid value for 'SUBJECT'" in result.output
    assert published == []


def test_forget_refuses_a_non_numeric_contact_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forget_commands, "publish_request", lambda *a: pytest.fail("published"))
    result = _run("forget", "ann@example.com", "--kind", "contact_id")
    assert result.exit_code == 2 and "not a numeric contact_id" in result.output


REQUESTED = datetime(2026, 1, 1, tzinfo=UTC)


def _receipt(**fields: Any) -> dict[str, Any]:
    receipt: dict[str, Any] = {
        "request_id": "r1",
        "subject": "ann@example.com",
        "subject_kind": "email",
        "identifiers": ["email:ann@example.com"],
        "pattern_hashes": [],
        "removed": [{"index": "streams-chunks-v1", "source": "tickets", "chunks": 0, "documents": 0}],
        "redacted": [],
        "state_records_removed": 0,
        "dead_letters_tombstoned": 0,
        "verification": {"subject_field_hits": 0, "bm25_hits": 0, "knn_hits": 0, "hybrid_hits": 0},
        "received_at": REQUESTED,
        "unsearchable_at": REQUESTED + timedelta(seconds=0.5),
        "purged_at": None,
        "status": "unsearchable",
        "error": None,
    }
    return {**receipt, **fields}


@pytest.mark.parametrize("status", ["rejected", "failed"])
def test_a_rejected_or_failed_receipt_claims_no_verification_and_no_time(status: str) -> None:
    lines = forget_commands.describe_receipt(
        _receipt(status=status, identifiers=[], error="InvalidRequest: subject 'x' is not an email address"),
        REQUESTED,
    )
    text = "\n".join(lines)
    assert f"was {status}: nothing was searched or removed" in text and "InvalidRequest" in text
    assert "verification" not in text and "unsearchable" not in text and "after the request" not in text


def test_a_subject_never_indexed_is_said_to_be_that() -> None:
    text = "\n".join(forget_commands.describe_receipt(_receipt(), REQUESTED))
    assert "nothing indexed about ann@example.com" in text
    assert "searched for: email:ann@example.com" in text
    assert "is unsearchable" not in text and "purged" not in text


def test_a_subject_that_was_indexed_is_unsearchable() -> None:
    removed = [{"index": "v1", "source": "tickets", "chunks": 3, "documents": 1, "document_ids": ["tickets/ticket/1"]}]
    text = "\n".join(forget_commands.describe_receipt(_receipt(removed=removed, state_records_removed=1), REQUESTED))
    assert "ann@example.com is unsearchable" in text
    assert "deleted: v1 / tickets: 3 chunks of 1 documents" in text
    assert "unsearchable 0.50s after the request; purged at pending" in text and "verification" in text


class _Message:
    def __init__(self, key: bytes, value: bytes) -> None:
        self._key, self._value = key, value

    def error(self) -> None:
        return None

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value


@pytest.mark.parametrize("status", ["rejected", "nothing_indexed"])
def test_waiting_for_the_purge_ends_at_a_receipt_no_purge_follows(status: str) -> None:
    from dataclasses import replace

    from streams import avro
    from streams.forget.receipt import Receipt

    rejected = Receipt.rejected("r1", {"subject": "x"}, "InvalidRequest: no", REQUESTED)
    final = rejected if status == "rejected" else replace(rejected, status=status, error=None)
    message = _Message(b"r1", avro.encode("deletion_receipt", final.to_dict(), None))

    class _Consumer:
        def poll(self, timeout: float) -> _Message:
            return message

    receipt = forget_commands.wait_for_receipt(_Consumer(), "r1", 5.0, "purged")  # type: ignore[arg-type]
    assert receipt is not None and receipt["status"] == status


# -- verify ---------------------------------------------------------------------------------------


def _report(missing: int) -> SourceReport:
    report = SourceReport("tickets", source_documents=missing, indexed_documents=0)
    report.issues["missing"] = [Issue(f"tickets/ticket/{n}", "not indexed") for n in range(missing)]
    return report


def test_verify_json_honours_the_limit_and_counts_everything() -> None:
    body = report_json([_report(4403)], 2, None)
    [tickets] = body["sources"]
    assert len(tickets["missing"]) == 2 and tickets["counts"]["missing"] == 4403
    assert set(tickets["counts"]) == set(CATEGORIES)
    assert body["ok"] is False and body["limit"] == 2


def test_verify_names_a_backlog_as_rows_in_flight() -> None:
    reports = [_report(3)]
    assert verdict(reports, None) == "index and sources differ"
    assert verdict(reports, 0) == "index and sources differ"
    behind = verdict(reports, 4000)
    assert "4000 message(s) behind" in behind and "in flight" in behind
    assert report_json(reports, 20, 4000)["in_flight"] is True
    assert report_json([_report(0)], 20, 4000)["in_flight"] is False
    assert verdict([_report(0)], 4000) == "index consistent with the sources"


# -- search through a running worker ----------------------------------------------------------------


def _worker_answers(monkeypatch: pytest.MonkeyPatch, handler: Any) -> list[str]:
    import httpx

    from streams import auth, client
    from streams import search as search_module

    direct: list[str] = []
    monkeypatch.setattr(auth, "local_key", lambda settings, name: "operator-key")
    real_client = httpx.Client

    def with_mock_transport(*args: Any, transport: Any = None, **kwargs: Any) -> httpx.Client:
        return real_client(*args, transport=transport or httpx.MockTransport(handler), **kwargs)

    monkeypatch.setattr(client.httpx, "Client", with_mock_transport)
    monkeypatch.setattr(search_module, "_from_elasticsearch", lambda *args: direct.append("direct") or [])
    return direct


def test_search_asks_a_running_worker_and_loads_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from tests.unit.test_search_client import ANSWER

    direct = _worker_answers(monkeypatch, lambda request: httpx.Response(200, json=ANSWER))
    result = _run("search", "printer", "--k", "1")
    assert result.exit_code == 0, result.output
    assert "Printer jams" in result.output and "<em>" not in result.output
    assert direct == []
    assert _run("search", "printer", "--direct").exit_code == 0 and direct == ["direct"]


def test_search_falls_back_to_elasticsearch_when_no_worker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    direct = _worker_answers(monkeypatch, refuse)
    result = _run("search", "printer")
    assert result.exit_code == 0 and "no results" in result.output and direct == ["direct"]
