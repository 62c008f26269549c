"""Freshness reports: the Avro round trip, the gauge read-out, and the `streams freshness` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from streams import avro
from streams.errors import DecodeError
from streams.observability import commands
from streams.observability.freshness import FreshnessWindow, figures
from streams.observability.freshness_report import (
    decode_freshness_report,
    encode_freshness_report,
    freshness_report_record,
    report_key,
)

END = datetime(2025, 3, 1, 12, 0, 10, 123000, tzinfo=UTC)
START = END - timedelta(seconds=10)


def _record() -> dict[str, Any]:
    return freshness_report_record(
        "worker-1", START, END, [figures("tickets", []), figures("wiki", [0.8, 1.2, 3.5], oldest_unindexed_age_s=2.0)]
    )


def test_a_report_round_trips_through_avro() -> None:
    record = _record()
    data = encode_freshness_report(record)
    assert data[:2] == avro.SINGLE_OBJECT_MAGIC
    decoded = decode_freshness_report(data)
    assert decoded == record
    assert decoded["window_end"] == END  # timestamp-millis keeps milliseconds and the UTC zone
    assert decoded["sources"][0]["p50_s"] is None


def test_a_window_closes_into_a_report() -> None:
    window = FreshnessWindow(("wiki",))
    window.observe("wiki", 1.25)
    start, end, closed = window.close_window()
    decoded = decode_freshness_report(encode_freshness_report(freshness_report_record("w", start, end, closed)))
    assert decoded["sources"] == [f.to_json() for f in closed]
    assert decoded["sources"][0]["max_s"] == 1.25


def test_another_schema_is_not_a_report() -> None:
    with pytest.raises(DecodeError):
        decode_freshness_report(avro.encode("freshness_report", _record())[:12])
    with pytest.raises(DecodeError):
        decode_freshness_report(b"\xc3\x01" + b"\x00" * 8 + b"body")
    with pytest.raises(DecodeError):
        decode_freshness_report(b"plain json")


def test_reports_are_keyed_by_worker() -> None:
    assert report_key("worker-1") == b"worker-1"


def test_the_table_shows_every_source() -> None:
    table = commands.render_table(_record()["sources"]).splitlines()
    assert table[0].split()[:2] == ["source", "events"]
    assert table[1].split() == ["tickets", "0", "-", "-", "-", "-", "0.000", "-", "-"]
    assert table[2].split() == ["wiki", "3", "1.200", "3.500", "3.500", "3.500", "2.000", "-", "-"]


def test_the_command_reads_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"worker_id": "worker-1", "sources": _record()["sources"]}
    seen: list[str] = []

    def fake_read(url: str, timeout_s: float) -> dict[str, Any]:
        seen.append(url)
        return body

    behind = "source wiki: behind by 4000 events, about 40 s to drain (no event captured for 61.0 s ...)"

    def fake_health(url: str, timeout_s: float) -> dict[str, Any]:
        seen.append(url)
        return {
            "status": "behind",
            "capture_age_s": {"tickets": 4.5, "wiki": 61.0},
            "sources": {"tickets": "ok", "wiki": "behind"},
            "reasons": [behind],
            "lag": {"events": 4000, "drain_rate_per_s": 100.0, "drain_s": 40.0, "unchanged_s": 0.0},
        }

    monkeypatch.setattr(commands, "read_worker", fake_read)
    monkeypatch.setattr(commands, "read_health", fake_health)
    result = CliRunner().invoke(commands.freshness, ["--json", "--url", "http://worker:1"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["capture_age_s"] == {"tickets": 4.5, "wiki": 61.0}
    assert [(s["source"], s["capture_age_s"], s["capture"]) for s in shown["sources"]] == [
        ("tickets", 4.5, "ok"),
        ("wiki", 61.0, "behind"),
    ]
    assert shown["capture"]["status"] == "behind" and shown["capture"]["lag"]["drain_s"] == 40.0
    assert seen == ["http://worker:1", "http://worker:1"]
    table = CliRunner().invoke(commands.freshness, ["--url", "http://worker:1"]).output.splitlines()
    assert "capture age s" in table[1]
    assert table[3].split()[-2:] == ["61.000", "behind"]
    assert table[4] == behind


def test_no_worker_is_a_clear_error() -> None:
    result = CliRunner().invoke(commands.freshness, ["--url", "http://127.0.0.1:9", "--timeout", "1"])
    assert result.exit_code == 1
    assert "no worker answered at http://127.0.0.1:9/freshness" in result.output
    assert "streams worker" in result.output


def test_snapshot_figures_travel_in_the_report() -> None:
    record = freshness_report_record("w", START, END, [figures("tickets", [1.0], 0.0, [60.0, 90.0])])
    (decoded,) = decode_freshness_report(encode_freshness_report(record))["sources"]
    assert (decoded["events"], decoded["p99_s"]) == (1, 1.0)
    assert (decoded["snapshot_events"], decoded["snapshot_max_s"]) == (2, 90.0)


def test_a_report_of_the_previous_schema_still_decodes() -> None:
    # A topic written by the previous release: read through schema resolution, new fields defaulted.
    import io

    import fastavro

    old = avro._writer_schemas("freshness_report")
    (older_fingerprint,) = [fp for fp in old if fp != avro._fingerprint("freshness_report")]
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body,
        old[older_fingerprint],
        {
            "worker_id": "w",
            "window_start": START,
            "window_end": END,
            "sources": [
                {
                    "source": "wiki",
                    "events": 1,
                    "p50_s": 1.0,
                    "p95_s": 1.0,
                    "p99_s": 1.0,
                    "max_s": 1.0,
                    "oldest_unindexed_age_s": 0.0,
                }
            ],
        },
    )
    decoded = decode_freshness_report(avro.SINGLE_OBJECT_MAGIC + older_fingerprint + body.getvalue())
    (wiki,) = decoded["sources"]
    assert (wiki["events"], wiki["snapshot_events"], wiki["snapshot_p99_s"]) == (1, 0, None)


def test_the_command_shows_snapshot_figures_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = [figures("tickets", [0.5], 0.0, [13.0, 87.0]).to_json()]
    monkeypatch.setattr(commands, "read_worker", lambda url, timeout_s: {"worker_id": "w", "sources": sources})
    health = {"status": "ok", "capture_age_s": {"tickets": 1.5}, "sources": {"tickets": "ok"}, "reasons": []}
    monkeypatch.setattr(commands, "read_health", lambda url, timeout_s: health)
    lines = CliRunner().invoke(commands.freshness, []).output.splitlines()
    assert lines[2].split() == ["tickets", "1", "0.500", "0.500", "0.500", "0.500", "0.000", "1.500", "ok"]
    apart = lines.index(commands.SNAPSHOT_TITLE)
    assert lines[apart + 2].split() == ["tickets", "2", "13.000", "87.000", "87.000", "87.000"]
