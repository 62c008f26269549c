"""Live work during a backfill: real edits and deletion requests while the burst drains, each timed
until the index shows it (an edit searchable, a person unsearchable).

The edits are steady.py's (a wiki paragraph, a ticket comment, a CRM note, in turn), one a second,
made and timed by the freshness scenarios' shared load (timed_edits.py); the deletion requests are
forget.py's people (a ticket, a contact, a note and a ticket naming them, created and indexed before
the burst), one every few seconds. Both run in threads of their own, from `start()` to `stop()`, so
that they overlap the whole burst as a person and a compliance team would."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

from streams.bench import forget, steady
from streams.bench.probes import BenchError, Progress, wait_for
from streams.bench.stats import summary
from streams.bench.timed_edits import EditLoad, freshness
from streams.clients import kafka_producer
from streams.settings import Settings


class LiveProbes:
    def __init__(
        self,
        settings: Settings,
        client: Any,
        progress: Progress,
        *,
        people: int,
        edit_every_s: float = 1.0,
        forget_every_s: float = 4.0,
        timeout_s: float = 180.0,
    ) -> None:
        self.settings, self.client, self.progress = settings, client, progress
        self.edit_every_s, self.forget_every_s, self.timeout_s = edit_every_s, forget_every_s, timeout_s
        self.rng = random.Random()
        self.targets = steady._live(client, settings.index_alias, *steady._ids(settings))
        tag = uuid.uuid4().hex[:8]
        progress(f"backfill: creating {people} people to forget during the burst")
        self.people = [forget.make_person(tag, n) for n in range(people)]
        for person in self.people:
            indexed = forget._count_is(client, settings.index_alias, person, lambda n: n[0] >= 3 and n[1] >= 2)
            if not wait_for(indexed, timeout_s):
                raise BenchError(f"{person.email} was not indexed within {timeout_s:.0f}s")
        self.load: EditLoad[steady.Edit] = EditLoad()
        self.forget_times: list[float] = []
        self.forget_failures: list[str] = []
        self._stop = threading.Event()
        self._forgetting = threading.Thread(target=self._forget, name="bench-backfill-forget", daemon=True)
        # Times the edits while the burst drains; `stop()` waits for the last ones.
        self._polling = threading.Thread(
            target=self.load.wait_searchable,
            args=(self._searchable, _quiet, _quiet_line),
            kwargs={"drain_s": 0.0},
            name="bench-backfill-polls",
            daemon=True,
        )

    def start(self) -> None:
        self.load.start(
            "backfill-edits", None, self.edit_every_s, lambda n: steady.make_edit(n, self.rng, *self.targets)
        )
        self._polling.start()
        self._forgetting.start()

    def stop(self, drain_s: float = 60.0) -> dict[str, Any]:
        """Stop issuing; wait up to `drain_s` for the last edits to be seen; the figures."""
        self._stop.set()
        self.load.stop()
        for thread in (self._polling, self._forgetting):
            thread.join(timeout=drain_s + self.timeout_s)
        self.load.wait_searchable(self._searchable, _quiet, _quiet_line, drain_s=drain_s)
        edits = self.load.made
        fresh = freshness(edits)
        return {
            "live_edits": len(edits),
            "live_never_searchable": len(edits) - len(fresh),
            "live_edit_errors": self.load.failures[:5],
            "live_freshness_s": summary(fresh),
            "live_freshness_by_source_s": {
                source: summary(freshness(e for e in edits if e.source == source))
                for source in sorted({e.source for e in edits})
            },
            "forget_requests": len(self.forget_times) + len(self.forget_failures),
            "forget_unsearchable_s": summary(self.forget_times),
            "forget_failures": self.forget_failures,
        }

    def _searchable(self, pending: list[steady.Edit]) -> list[steady.Edit]:
        return steady.searchable(self.client, self.settings.index_alias, pending)

    def _forget(self) -> None:
        producer = kafka_producer(self.settings)
        for person in self.people:
            if self._stop.wait(self.forget_every_s):
                return
            times, _, failures = forget._forget_all(
                self.settings, self.client, producer, [person], self.timeout_s, self.progress, " (backfill)"
            )
            self.forget_times += times
            self.forget_failures += failures


def _quiet(line: str) -> None:
    """The backfill reports its own progress; the probes' lines would only interleave with it."""


def _quiet_line(made: int, seen: int) -> str:
    return ""
