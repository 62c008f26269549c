"""The backfill's live probes over fake sources and a fake index: the edits run on the shared load
until the probes are stopped, each is timed until the index's state record shows it, a failed one is
reported, and the figures keep the names the bench report and its docs read."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from streams.bench import backfill_probes, steady
from streams.settings import Settings

SOURCES = ["wiki", "tickets", "crm"]


@pytest.mark.timeout(60)
def test_the_probes_edit_until_stopped_and_report_each_edit_timed_until_the_index_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[int] = []
    enough = threading.Event()

    def make_edit(n: int, rng: random.Random, *targets: list[int]) -> steady.Edit:
        made.append(n)
        if len(made) >= 7:
            enough.set()
        if n == 1:
            raise ConnectionError("the wiki refused the edit")
        source = SOURCES[n % 3]
        document = "crm/note/lost" if source == "crm" else f"{source}/{n}"  # CRM notes never reach the index
        return steady.Edit(source, document, lambda state: state is not None, time.time())

    def states(client: Any, alias: str, ids: set[str]) -> dict[str, dict[str, Any]]:
        return {i: {"root": {}} for i in ids if i != "crm/note/lost"}

    monkeypatch.setattr(steady, "_ids", lambda settings: ([1], [1], [1]))
    monkeypatch.setattr(steady, "_live", lambda client, alias, *ids: ids)
    monkeypatch.setattr(steady, "make_edit", make_edit)
    monkeypatch.setattr(steady, "states", states)
    monkeypatch.setattr(backfill_probes, "kafka_producer", lambda settings: None)

    probes = backfill_probes.LiveProbes(Settings(), None, lambda line: None, people=0, edit_every_s=0.01)
    probes.start()
    assert enough.wait(30)
    report = probes.stop(drain_s=0.5)
    issued = len(made)
    time.sleep(0.05)
    assert len(made) == issued  # stopped: no edit after stop()

    edits = [n for n in made if n != 1]
    lost = [n for n in edits if n % 3 == 2]
    assert set(report) == {
        "live_edits",
        "live_never_searchable",
        "live_edit_errors",
        "live_freshness_s",
        "live_freshness_by_source_s",
        "forget_requests",
        "forget_unsearchable_s",
        "forget_failures",
    }
    assert report["live_edits"] == len(edits)
    assert report["live_never_searchable"] == len(lost)
    assert report["live_edit_errors"] == ["ConnectionError: the wiki refused the edit"]
    assert report["live_freshness_s"]["count"] == len(edits) - len(lost)
    assert set(report["live_freshness_by_source_s"]) == {"wiki", "tickets", "crm"}
    assert report["live_freshness_by_source_s"]["crm"]["count"] == 0
    assert (report["forget_requests"], report["forget_failures"]) == (0, [])
