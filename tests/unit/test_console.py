"""The web console at the worker's `/`, served by the worker's own faust web app (create_app) with fake
data behind it: a fake runtime (its freshness window is the real one), a capture clock on a fake clock,
a lag reading, receipts and a search that answer from memory.

The browser tests load the page in headless Chromium (Debian's `chromium`, driven by Playwright) and
read what a person would see; screenshots are kept under the test's tmp_path (and under
STREAMS_TEST_ARTIFACTS when set)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from streams.agents import console
from streams.app import create_app
from streams.auth import Authenticator, parse_api_keys
from streams.elastic import hybrid_index
from streams.elastic.hybrid_index import ChunkHit, DocumentHit, SearchPage
from streams.observability import metrics
from streams.observability.capture_health import CaptureClock, LagHistory
from streams.observability.consumer_lag import LagReading
from streams.observability.freshness import FreshnessWindow
from streams.settings import Settings
from streams.stack.packages import ensure_browser_packages

CHROMIUM = Path("/usr/bin/chromium")
OPERATOR_KEY = "operator-key-0123456789"
SUPPORT_KEY = "support-key-0123456789ab"
SOURCES = ("wiki", "tickets", "crm")


class FakeEmbedder:
    async def encode_query_async(self, text: str) -> list[float]:
        return [0.0]


@dataclass
class FakeRuntime:
    freshness: FreshnessWindow
    es: Any = None

    def search_target(self) -> tuple[str, Any]:
        return "streams-chunks-v1", FakeEmbedder()


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


RECEIPTS = [
    {
        "request_id": "req-0001",
        "subject": "ada.lovelace@example.com",
        "subject_kind": "email",
        "status": "unsearchable",
        "error": None,
        "received_at": datetime(2026, 1, 2, 10, 0, tzinfo=UTC),
        "unsearchable_at": datetime(2026, 1, 2, 10, 0, 1, tzinfo=UTC),
        "purged_at": None,
        "removed": [{"index": "streams-chunks-v1", "source": "tickets", "chunks": 3, "documents": 1}],
    },
    {
        "request_id": "req-0002",
        "subject": "not an email@@",
        "subject_kind": "email",
        "status": "rejected",
        "error": "InvalidRequest: subject 'not an email@@' is not an email address",
        "received_at": datetime(2026, 1, 2, 9, 0, tzinfo=UTC),
        "unsearchable_at": datetime(2026, 1, 2, 9, 0, tzinfo=UTC),
        "purged_at": None,
        "removed": [],
    },
]


async def fake_search(
    es: Any, index: str, query: str, vector: Any, k: int, sources: Any, groups: Any, **options: Any
) -> SearchPage:
    chunk = ChunkHit(
        "c1", "Refund for order 42 <script>alert(1)</script>", "body", ["<em>Refund</em> for order 42 <b>now</b>"]
    )
    chunk.bm25_rank, chunk.index, chunk.model, chunk.chunker = 1, index, "all-MiniLM-L6-v2", "max256"
    hit = DocumentHit("tickets:42", "tickets", "Order 42 refund", "javascript:alert(1)", 0.5, [chunk])
    return SearchPage([hit], offset=0, total=1)


@dataclass
class Console:
    client: TestClient[Any, Any]
    clock: Clock
    settings: Settings
    indexing_lag: LagHistory

    @property
    def url(self) -> str:
        return str(self.client.make_url("/"))


@pytest_asyncio.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    settings = Settings(capture_age_threshold_s=20.0)
    app = create_app(settings)
    service = app.worker
    clock = Clock()
    service.capture_clock = CaptureClock(SOURCES, clock)
    service.indexing_lag = LagHistory(clock)
    for source in SOURCES:
        service.capture_clock.received(source, clock.now)
    window = FreshnessWindow(SOURCES)
    for value in (0.4, 0.6, 0.8):
        window.observe("tickets", value)
    window.observe("tickets", 120.0, "snapshot")
    window.observe("wiki", 1.5)
    service._runtime = FakeRuntime(window)  # type: ignore[assignment]
    service._runtime_ready.set()
    keys = {OPERATOR_KEY: {"name": "ops", "operator": True}, SUPPORT_KEY: {"name": "helpdesk", "groups": ["support"]}}
    service._authenticator = Authenticator(parse_api_keys(json.dumps(keys), "test keys"))
    read_at = datetime.now(UTC)
    service.previous_consumer_lag = LagReading(
        read_at - timedelta(seconds=10),
        {("tickets.public.tickets", 0): 240, ("tickets.public.tickets", 1): 2, (settings.routed_topic, 3): 2},
    )
    service.consumer_lag = LagReading(
        read_at,
        {("tickets.public.tickets", 0): 40, ("tickets.public.tickets", 1): 2, (settings.routed_topic, 3): 7},
    )
    monkeypatch.setattr(service, "latest_receipts", lambda limit: RECEIPTS[:limit])
    # /search runs as written; only the index behind it is a fake.
    monkeypatch.setattr(hybrid_index, "search_page", fake_search)
    metrics.DEAD_LETTERS.labels(stage="decode").inc(0)
    client = TestClient(TestServer(await app.web.wsgi()))
    await client.start_server()
    try:
        yield Console(client, clock, settings, service.indexing_lag)
    finally:
        await client.close()


# -- the endpoints ---------------------------------------------------------------------------------


async def test_a_client_that_asks_for_json_still_gets_the_status_document(served: Console) -> None:
    response = await served.client.get("/", headers={"Accept": "application/json"})
    assert response.status == 200 and await response.json() == {"status": "OK"}
    page = await served.client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status == 200 and page.content_type == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = await served.client.get("/console/console.js")
    assert script.status == 200 and script.content_type == "text/javascript"


async def test_state_has_lag_per_lane_and_dead_letters(served: Console) -> None:
    state = await (await served.client.get("/console/state")).json()
    lanes = {lane["lane"]: lane for lane in state["lanes"]}
    assert lanes["routing"]["messages"] == 42
    assert lanes["routing"]["topics"] == {"tickets.public.tickets": 42}
    # 200 routed in 10 s, 42 left: about 2 s to drain; the indexing lane grows; the deletion lane is empty.
    assert (lanes["routing"]["drain_per_s"], lanes["routing"]["drain_s"]) == (20.0, 2.1)
    assert lanes["indexing"]["messages"] == 7
    assert (lanes["indexing"]["drain_per_s"], lanes["indexing"]["drain_s"]) == (-0.5, None)
    assert (lanes["deletion"]["messages"], lanes["deletion"]["drain_s"]) == (0, 0.0)
    assert "decode" in state["dead_letters"]


async def test_receipts_name_nobody_without_an_operator_key(served: Console) -> None:
    anonymous = await (await served.client.get("/console/receipts")).json()
    support = await (
        await served.client.get("/console/receipts", headers={"Authorization": f"Bearer {SUPPORT_KEY}"})
    ).json()
    for body in (anonymous, support):
        assert body["detailed"] is False
        assert [r["request_id"] for r in body["receipts"]] == ["req-0001", "req-0002"]
        text = str(body)
        assert "ada.lovelace" not in text and "not an email" not in text
    assert anonymous["receipts"][0]["chunks_removed"] == 3
    operator = await (
        await served.client.get("/console/receipts", headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
    ).json()
    assert operator["detailed"] is True
    assert operator["receipts"][0]["subject"] == "ada.lovelace@example.com"
    refused = await served.client.get("/console/receipts", headers={"Authorization": "Bearer wrong-key-0123456789"})
    assert refused.status == 401 and "WWW-Authenticate" in refused.headers


def test_json_is_wanted_only_without_html() -> None:
    assert console.wants_json("application/json")
    assert not console.wants_json("text/html,application/json")
    assert not console.wants_json("*/*")
    assert not console.wants_json("")


# -- in the browser --------------------------------------------------------------------------------


def artifacts_dir(tmp_path: Path) -> Path:
    configured = os.environ.get("STREAMS_TEST_ARTIFACTS")
    directory = Path(configured) / "console" if configured else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def browser() -> Iterator[Any]:
    # Debian's Chromium, installed on first use as the stack installs its packages (a clear error
    # naming the apt-get command when not root): never a skipped test.
    ensure_browser_packages(print)
    assert CHROMIUM.exists() and shutil.which("chromium"), "Debian's chromium did not install"
    import playwright.async_api as playwright_api

    yield playwright_api


async def test_the_console_shows_every_panel_in_a_browser(served: Console, browser: Any, tmp_path: Path) -> None:
    expect = browser.expect
    async with browser.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = await chromium.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(served.url + "?refresh=300")

            # Freshness: one row per source, live and snapshot apart, capture age from /health.
            tickets = page.locator("#freshness-tickets")
            await expect(tickets.locator(".live-p50")).to_have_text("0.600 s")
            await expect(tickets.locator(".snapshot-p50")).to_have_text("120.000 s")
            for source in SOURCES:
                await expect(page.locator(f"#freshness-{source}")).to_be_visible()
                await expect(page.locator(f"#freshness-{source} .capture-age")).not_to_have_text("-")
            await expect(page.locator("#health-verdict")).to_have_text("healthy")
            await expect(page.locator("#lag tr[data-lane=routing] .messages")).to_have_text("42")
            await expect(page.locator("#lag tr[data-lane=routing] .drain")).to_have_text("about 2 s")
            await expect(page.locator("#lag tr[data-lane=indexing] .drain")).to_have_text("not draining")
            await expect(page.locator("#lag tr[data-lane=deletion] .drain")).to_have_text("none behind")
            await expect(page.locator("#dead-letters tr[data-stage=decode]")).to_be_visible()

            # Receipts: ids and statuses, no subject without an operator key.
            receipts = page.locator("#receipts")
            await expect(receipts.locator("tr[data-request=req-0002] .status")).to_have_text("rejected")
            assert "ada.lovelace" not in await receipts.inner_text()
            await page.screenshot(path=str(artifacts_dir(tmp_path) / "console.png"), full_page=True)

            # Search with a pasted key: highlights become marks, any other markup stays text.
            await page.fill("#search-key", SUPPORT_KEY)
            await page.fill("#search-q", "refund")
            await page.click("#search-submit")
            hit = page.locator("#search-results li[data-document='tickets:42']")
            await expect(hit).to_be_visible()
            await expect(hit.locator("mark")).to_have_text("Refund")
            await expect(page.locator("#search-summary")).to_have_text(
                "1 hit for helpdesk (groups support), 1 containing the words"
            )
            assert await hit.locator("b, script").count() == 0
            assert await hit.locator("a").count() == 0  # a javascript: link is shown as text
            assert await page.evaluate("window.sessionStorage.getItem('streams.searchKey')") == SUPPORT_KEY
            assert await page.evaluate("window.localStorage.length") == 0

            # A wrong key is the API's own error, shown.
            await page.fill("#search-key", "wrong-key-0123456789")
            await page.click("#search-submit")
            await expect(page.locator("#search-error")).to_contain_text("401")

            # The operator's key shows the subjects.
            await page.fill("#search-key", OPERATOR_KEY)
            await page.click("#search-submit")
            await expect(receipts.locator(".detail").first).to_be_visible()
            await expect(receipts).to_contain_text("ada.lovelace@example.com")

            # Heartbeats queued behind a backlog that drains: behind, not a stall.
            served.indexing_lag.observe(500)
            served.clock.now += timedelta(seconds=30)
            served.indexing_lag.observe(400)
            await expect(page.locator("#health-verdict")).to_have_text("behind")
            await expect(page.locator("#health-reasons")).to_contain_text("behind by 400 events")

            # The backlog stops shrinking: the next refresh turns the verdict, with the reason.
            served.clock.now += timedelta(seconds=60)
            await expect(page.locator("#health-verdict")).to_have_text("unhealthy")
            await expect(page.locator("#health-reasons")).to_contain_text("source tickets")
            await page.screenshot(path=str(artifacts_dir(tmp_path) / "console-unhealthy.png"), full_page=True)
            assert errors == []
        finally:
            await chromium.close()


def test_one_reading_tells_no_drain_rate() -> None:
    settings = Settings()
    only = LagReading(datetime.now(UTC), {(settings.deletion_topic, 0): 3})
    deletion = {lane["lane"]: lane for lane in console.lanes(only, None, settings)}["deletion"]
    assert (deletion["messages"], deletion["drain_per_s"], deletion["drain_s"]) == (3, None, None)
    assert [lane["messages"] for lane in console.lanes(None, None, settings)] == [0, 0, 0, 0]
