"""The web console of the running worker, in headless Chromium: every source's freshness row, the
health verdict /health gives, the lag and receipts panels, and a search with the local operator key.
Chromium is installed on first use (Debian's package, streams/stack/packages.py); screenshots are kept
under STREAMS_TEST_ARTIFACTS (default: <stack_home>/test-artifacts/console)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.stack.packages import ensure_browser_packages
from tests.integration.helpers import OPERATOR, search_key
from tests.integration.test_capture_health import health

pytestmark = pytest.mark.integration

# A capture age as the page writes it: a number of seconds, never the "-" of a missing one.
SECONDS = re.compile(r"^\d+\.\d{3} s$")


def artifacts(settings: Settings) -> Path:
    configured = os.environ.get("STREAMS_TEST_ARTIFACTS")
    directory = Path(configured) / "console" if configured else settings.stack_home / "test-artifacts" / "console"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_the_console_shows_the_running_worker(worker: Settings) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (a dev dependency) is missing")
    chromium_path = ensure_browser_packages(print)
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{worker.worker_url()}/?refresh=1000")

            for source in worker.sources:
                row = page.locator(f"#freshness-{source}")
                expect(row).to_be_visible(timeout=30_000)
                expect(row.locator(".capture-age")).to_have_text(SECONDS, timeout=30_000)

            # The verdict is the one /health gives.
            verdict = page.locator("#health-verdict")
            expect(verdict).not_to_have_text("waiting for /health", timeout=30_000)
            _, body = health(worker)
            expected = {"ok": "healthy", "behind": "behind", "stalled": "unhealthy"}[body["status"]]
            expect(verdict).to_have_text(expected, timeout=30_000)
            for reason in body["reasons"][:1]:
                expect(page.locator("#health-reasons")).to_contain_text(reason.split(":")[0])

            expect(page.locator("#lag tr[data-lane=indexing]")).to_be_visible()
            expect(page.locator("#receipts-status")).to_contain_text(worker.receipts_topic, timeout=30_000)
            assert not page.locator("#receipts .detail").first.is_visible()
            page.screenshot(path=str(artifacts(worker) / "console.png"), full_page=True)

            page.fill("#search-key", search_key(OPERATOR))
            page.fill("#search-q", "the")
            page.click("#search-submit")
            expect(page.locator("#search-summary")).to_contain_text(
                re.compile(rf"hits? for {OPERATOR}"), timeout=30_000
            )
            page.screenshot(path=str(artifacts(worker) / "console-search.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
