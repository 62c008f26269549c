"""The worker is built by `create_app(settings)`, and its state is its WorkerService's: two workers
configured differently in one process share nothing, a service stopping removes only its own registry
entry, and importing the worker's modules reads neither the environment nor the project's files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mode import Service

from streams.agents.service import WorkerService
from streams.app import create_app
from streams.pipeline.document_mapping import load_mappings
from streams.resources import connectors_dir
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "a" * 40
KEY_B = "b" * 40


def _settings(worker_id: str, port: int, key: str) -> Settings:
    keys = json.dumps({key: {"name": worker_id, "groups": ["support"]}})
    return Settings(worker_id=worker_id, worker_web_port=port, search_api_keys=keys, stack_home=ROOT / "no-stack")


def test_two_workers_in_one_process_share_no_state() -> None:
    mappings = load_mappings(connectors_dir(Settings()))
    a = create_app(_settings("indexer-a", 16070, KEY_A), mappings)
    b = create_app(_settings("indexer-b", 16071, KEY_B), mappings)
    assert (a.conf.id, b.conf.id) == ("indexer-a", "indexer-b")
    assert a.worker is not b.worker and a.worker.settings.worker_id == "indexer-a"
    assert a.worker.topics.ledger.app is a and b.worker.topics.ledger.app is b
    assert a.worker.deletion.settings is a.worker.settings and a.worker.deletion is not b.worker.deletion
    lanes = {
        "forget_subjects.forget_subjects",
        "index_changes.index_changes",
        "index_changes.index_backfill",
    }
    assert set(a.agents) == set(b.agents) == {f"streams.agents.{lane}" for lane in lanes}
    assert {a.agents[name].app for name in a.agents} == {a}
    # The router is no agent: each service builds its own (agents/router_consumer.py).
    assert a.worker._build_router is not None and a.worker._build_router is not b.worker._build_router
    assert a.worker.instance != b.worker.instance
    assert a.worker.registry_record(3)["worker_id"] == "indexer-a"
    assert b.worker.registry_record(3)["instance"] == b.worker.instance

    before = b.worker.capture_clock.ages()["tickets"]
    a.worker.capture_clock.received("tickets", datetime.now(UTC))
    assert a.worker.capture_clock.ages()["tickets"] < 1.0
    assert b.worker.capture_clock.ages()["tickets"] >= before  # b has not seen the event

    assert a.worker.search_authenticator().authenticate(f"Bearer {KEY_A}").name == "indexer-a"
    assert b.worker.search_authenticator().authenticate(f"Bearer {KEY_B}").name == "indexer-b"
    assert a.worker.search_authenticator() is a.worker.search_authenticator()  # built once per worker


class FakeElasticsearch:
    """The calls a starting and stopping service makes: no pending purges, registry entries removed."""

    def __init__(self) -> None:
        self.removed: list[str] = []
        self.indices = self

    def options(self, **_: Any) -> FakeElasticsearch:
        return self

    async def refresh(self, index: str) -> None:
        return None

    async def search(self, index: str, **_: Any) -> dict[str, Any]:
        return {"hits": {"hits": []}}

    async def delete(self, index: str, id: str, **_: Any) -> None:
        self.removed.append(id)


class OfflineService(WorkerService):
    """A worker service whose ledger follower does not run: it would need Kafka."""

    @Service.task
    async def _follow_ledger(self) -> None:
        await self.runtime()


def test_each_service_builds_its_own_runtime_and_removes_only_its_own_registry_entry() -> None:
    mappings = load_mappings(connectors_dir(Settings()))

    def service(worker_id: str, port: int, es: FakeElasticsearch) -> OfflineService:
        app = create_app(_settings(worker_id, port, KEY_A), mappings)
        built: list[Settings] = []

        def build(settings: Settings) -> Any:
            built.append(settings)
            if len(built) == 1:
                raise ConnectionError("Elasticsearch is not up yet")  # the service tries again
            return type("Runtime", (), {"es": es, "settings": settings})()

        return OfflineService(app.worker.settings, mappings, app.worker.topics, build, retry_s=0.0)

    async def run() -> tuple[Any, Any, list[str]]:
        es = FakeElasticsearch()
        a, b = service("indexer-a", 16070, es), service("indexer-b", 16071, es)
        await a.start()
        await b.start()
        runtime_a, runtime_b = await a.runtime(), await b.runtime()
        await a.stop()
        removed_by_a = list(es.removed)
        await b.stop()
        assert es.removed == [a.instance, b.instance]
        return runtime_a, runtime_b, removed_by_a

    runtime_a, runtime_b, removed_by_a = asyncio.run(run())
    assert runtime_a.settings.worker_id == "indexer-a" and runtime_b.settings.worker_id == "indexer-b"
    assert len(removed_by_a) == 1 and removed_by_a[0].endswith(":16070")


# -- nothing at import ------------------------------------------------------------------------------

PROBE = """
import json, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" and args else None)
import importlib, pkgutil
import streams.agents
agents = [m.name for m in pkgutil.iter_modules(streams.agents.__path__, "streams.agents.")]
for module in ["streams.app", "streams.cli", *agents]:
    importlib.import_module(module)
from streams.app import create_app
{after}
root = {root!r}
project = [p for p in opened if p.startswith(root) and "/site-packages/" not in p]
print(json.dumps(sorted({{p for p in project if not p.endswith((".py", ".pyc"))}})))
"""

# Each one unreadable as a setting: any module that built Settings() at import would fail.
INVALID = {"STREAMS_WORKER_WEB_PORT": "not-a-port", "STREAMS_TOPIC_PARTITIONS": "many", "STREAMS_SOURCE_DSNS": "{"}


def _import_probe(after: str = "") -> subprocess.CompletedProcess[str]:
    # No bytecode written: a stale .pyc rewritten by the import would read as a file opened.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", **INVALID}
    code = PROBE.format(after=after, root=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_importing_the_worker_reads_no_setting_and_no_file() -> None:
    probe = _import_probe()
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout.splitlines()[-1]) == []


def test_the_import_probe_sees_a_module_that_reads_settings_or_files() -> None:
    """The probe can fail: building the app (what `streams worker` does at its start) reads both."""
    reads_settings = _import_probe("from streams.settings import Settings; Settings()")
    assert reads_settings.returncode != 0 and "SettingsError" in reads_settings.stderr
    # model_construct: the defaults, without reading the (invalid) environment.
    reads_files = _import_probe("from streams.settings import Settings; create_app(Settings.model_construct())")
    opened = json.loads(reads_files.stdout.splitlines()[-1])
    assert any(path.endswith("connectors/wiki.mapping.yaml") for path in opened), reads_files.stderr
