"""The worker's long-lived state and background work, owned by one faust (mode) Service.

`create_app` (streams/app.py) builds one per App and makes it a dependency of the App, so that it
starts before the App's consumer and agents and stops after them. It owns:
- the Runtime (clients, models, ledger, writers; agents/runtime.py), built in a thread when the
  service starts: loading the model takes seconds, and /health must answer meanwhile. Agents and
  pages `await service.runtime()`;
- the ledger follower (agents/follow_ledger.py), and this worker's entry in the worker registry,
  removed when the worker stops;
- the router and its loop (agents/route_changes.py, agents/router_consumer.py): Debezium's topics
  read by a consumer of their own, routed to the lanes' topics; stopped before the producer it
  forwards through is closed;
- the purge scheduler of the deletion lane, and at start the purges a stopped worker left pending;
- the capture clock behind /health and the capture-age gauge, the consumer-lag reader and the
  indexing lane's lag history (/health's "behind" or "stalled"), the last two lag readings (for the
  web console, agents/console.py) and the search authenticator.
None of it is a module global: two services in one process (two workers, two tests) share nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from faust.types import TopicT
from mode import Service

from streams.agents.follow_ledger import follow_ledger, registry_record
from streams.agents.forget_subjects import DeletionTopics, build_scheduler
from streams.agents.lanes import LivePriority
from streams.agents.route_changes import ChangeRouter
from streams.agents.router_consumer import RouterConsumer, RouterLoop, router_member
from streams.agents.runtime import Runtime, build_runtime
from streams.async_producer import AsyncProducer
from streams.auth import Authenticator
from streams.elastic import worker_registry
from streams.forget.latest_receipts import latest_receipts
from streams.forget.purge import PurgeScheduler
from streams.forget.signing import ReceiptChain, load_private_key
from streams.observability import metrics
from streams.observability.capture_health import CaptureClock, LagHistory
from streams.observability.consumer_lag import ConsumerLagReader, LagReading, worker_lag_reader
from streams.pipeline.document_mapping import Mappings
from streams.records import RawMessage
from streams.settings import Settings
from streams.topics import source_topics

log = logging.getLogger(__name__)

# How long the service waits before building the runtime again after a failure (Elasticsearch or
# Kafka not reachable yet, say): the agents wait for it meanwhile.
RUNTIME_RETRY_S = 5.0
# How long a stopping worker waits for the router to finish its batch and commit what was delivered;
# what it has not committed by then is routed again after the restart.
ROUTER_STOP_S = 30.0


def warn_default_ledger_key(settings: Settings) -> bool:
    """One warning at the worker's start when the ledger key is the public default: anyone who reads the
    source can then test a name against the ledger's hashes. True when it warned."""
    if not settings.uses_default_ledger_key():
        return False
    log.warning(
        "STREAMS_LEDGER_KEY is the public default development key: the hashes of forgotten people in the"
        " ledger are keyed with a key anyone can read. Set STREAMS_LEDGER_KEY to a secret of your own"
        " (for example `openssl rand -hex 32`) before the first deletion request, and keep it as long as"
        " the ledger (docs/forgetting.md)"
    )
    return True


@dataclass(frozen=True)
class WorkerTopics:
    """Every topic the worker reads or writes, declared once on its App (streams/app.py)."""

    routed: TopicT  # the repartition topic, keyed by document id
    backfill: TopicT  # the backfill lane's repartition topic, keyed the same way
    deletion: TopicT
    receipts: TopicT
    ledger: TopicT
    dead_letters: TopicT
    freshness: TopicT


class WorkerService(Service):
    def __init__(
        self,
        settings: Settings,
        mappings: Mappings,
        topics: WorkerTopics,
        build: Callable[[Settings], Runtime] = build_runtime,
        retry_s: float = RUNTIME_RETRY_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.mappings = mappings
        self.topics = topics
        self._build = build
        self._retry_s = retry_s
        self._runtime: Runtime | None = None
        self._runtime_ready = asyncio.Event()
        # host:pid names the process; the web port, which each live worker binds alone, tells apart
        # two workers of one process.
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{settings.worker_web_port}"
        self.started_at = datetime.now(UTC)
        # Built with the service, not with the runtime: /health must answer while the model loads,
        # and a source silent since the start is a stall too.
        self.capture_clock = CaptureClock(mappings.names)
        # The indexing lane's lag readings (agents/publish_freshness.py records them): /health tells
        # heartbeats queued behind a backlog from a capture that stopped.
        self.indexing_lag = LagHistory()
        # The backfill lane's lag readings: its backlog and how fast it drains (/health, the console).
        self.backfill_lag = LagHistory()
        # Live batches in flight: the backfill lane yields to them (agents/lanes.py).
        self.priority = LivePriority()
        chain = ReceiptChain(partial(load_private_key, settings.receipt_signing_key_path()), settings.worker_id)
        self.deletion = DeletionTopics(settings, topics.receipts, topics.ledger, topics.dead_letters, chain)
        self._purges: PurgeScheduler | None = None
        self._lag_reader: ConsumerLagReader | None = None
        self._forwards: AsyncProducer | None = None
        # The last two lag readings (agents/publish_freshness.py, every freshness_interval_s): the web
        # console shows the lag and, from the two, how fast each lane drains.
        self.consumer_lag: LagReading | None = None
        self.previous_consumer_lag: LagReading | None = None
        self._authenticator: Authenticator | None = None
        # The router, once built by what index_changes.register hands over (`route_with`); the live
        # lane asks it which of its documents proved bulk work (agents/lanes.py).
        self.router: ChangeRouter | None = None
        self._build_router: Callable[[], ChangeRouter] | None = None
        self._router_loop: RouterLoop | None = None
        self._router_stopped = asyncio.Event()

    def route_with(self, build: Callable[[], ChangeRouter]) -> None:
        """How to build the router (blocking: it is called in a thread when the service starts)."""
        self._build_router = build

    async def runtime(self) -> Runtime:
        """The runtime, once built (at once after that)."""
        await self._runtime_ready.wait()
        assert self._runtime is not None
        return self._runtime

    async def purges(self) -> PurgeScheduler:
        """The deletion lane's purge scheduler, once the runtime (its Elasticsearch client) is built."""
        runtime = await self.runtime()
        if self._purges is None:
            self._purges = build_scheduler(self.deletion, runtime)
        return self._purges

    async def forwards(self) -> AsyncProducer:
        """The router's producer (streams/async_producer.py), built on first use; closed, its queued
        records delivered, when the worker stops, after the agents."""
        if self._forwards is None:
            self._forwards = await asyncio.get_running_loop().run_in_executor(
                None, AsyncProducer.from_settings, self.settings
            )
        return self._forwards

    def registry_record(self, migration_version: int) -> dict[str, Any]:
        return registry_record(self.settings, self.instance, self.started_at, migration_version)

    def search_authenticator(self) -> Authenticator:
        """Built once; `streams worker` asks for it before starting, so bad credentials stop the start."""
        if self._authenticator is None:
            self._authenticator = Authenticator.from_settings(self.settings)
        return self._authenticator

    def lag_reader(self) -> ConsumerLagReader:
        """Built on first use (it opens a Kafka client): the committed offsets of this worker's group."""
        if self._lag_reader is None:
            self._lag_reader = worker_lag_reader(self.settings, self.mappings)
        return self._lag_reader

    def latest_receipts(self, limit: int) -> list[dict[str, Any]]:
        """The latest deletion receipts of every worker, from the receipts topic (blocking: run it in a thread)."""
        return latest_receipts(self.settings, limit)

    async def on_start(self) -> None:
        warn_default_ledger_key(self.settings)
        # The gauge is the process's (Prometheus' registry is global): it reads the running worker's clock.
        for source in self.mappings.names:
            metrics.CAPTURE_AGE.labels(source=source).set_function(partial(self.capture_clock.age_s, source))

    @Service.task
    async def _build_runtime(self) -> None:
        while not self.should_stop:
            try:
                runtime = await asyncio.get_running_loop().run_in_executor(None, self._build, self.settings)
            except Exception as exc:
                log.error("the worker's runtime could not be built, trying again in %.0f s: %s", self._retry_s, exc)
                await self.sleep(self._retry_s)
                continue
            self._runtime = runtime
            self._runtime_ready.set()
            return

    @Service.task
    async def _route_changes(self) -> None:
        if self._build_router is None:
            return
        try:
            router = self.router = await asyncio.get_running_loop().run_in_executor(None, self._build_router)
            settings = self.settings
            topics = source_topics(self.mappings, settings)
            instance = router_member(settings, self.mappings)

            def consumer() -> RouterConsumer:
                return RouterConsumer(settings, topics, settings.batch_max_events, settings.batch_within_s, instance)

            async def dispatch(messages: Sequence[RawMessage]) -> Awaitable[object]:
                # Routing is live work: a live edit read behind an import's rows waits for them to be
                # routed, so the backfill lane yields while a batch is routed, and while the router is
                # behind (its last poll was a full batch: more changes wait).
                async with self.priority.live():
                    return await router.dispatch(messages)

            def routed(size: int) -> None:
                self.priority.router_behind(size >= settings.batch_max_events)

            self._router_loop = RouterLoop(consumer, dispatch, routed)
            if not self.should_stop:
                await self._router_loop.run()
        finally:
            self._router_stopped.set()

    async def on_stop(self) -> None:
        """Before the tasks are cancelled: the router finishes its batch and commits what was delivered."""
        if self._router_loop is None:
            return
        self._router_loop.stop()
        try:
            await asyncio.wait_for(self._router_stopped.wait(), ROUTER_STOP_S)
        except TimeoutError:
            log.warning(
                "the router did not stop within %.0f s: its last batches are routed again after the restart",
                ROUTER_STOP_S,
            )

    @Service.task
    async def _follow_ledger(self) -> None:
        await follow_ledger(self.settings, await self.runtime(), self.registry_record)

    @Service.task
    async def _resume_purges(self) -> None:
        # Beside the deletion lane, never in its way: resume() waits out an outage and logs the rest.
        await (await self.purges()).resume()

    async def on_shutdown(self) -> None:
        """After the tasks are cancelled: the follower can no longer report this worker back."""
        if self._lag_reader is not None:
            self._lag_reader.close()
        if self._forwards is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._forwards.close)
        if self._runtime is None:
            return
        try:
            await worker_registry.remove(self._runtime.es, self.settings.workers_index, self.instance)
        except Exception as exc:  # a stale record ages out after worker_liveness_s anyway
            log.warning("could not remove this worker from the registry: %s", exc)
