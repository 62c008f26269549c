"""The worker's HTTP server listens on loopback unless a setting says otherwise.

faust's `web_bind` is the listening address (its own default is every interface); `web_host` only
names the host in URLs, so setting that alone would leave the server open to the network.
"""

from __future__ import annotations

import pytest

from streams.app import create_app
from streams.settings import Settings


def test_the_worker_listens_on_loopback_by_default() -> None:
    assert Settings().worker_web_bind == "127.0.0.1"
    assert create_app(Settings()).conf.web_bind == "127.0.0.1"


def test_a_setting_exposes_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMS_WORKER_WEB_BIND", "0.0.0.0")
    settings = Settings()
    assert settings.worker_web_bind == "0.0.0.0"
    # A wildcard bind still answers on loopback, which is where the CLI and the tests reach it.
    assert settings.worker_url() == "http://127.0.0.1:16066"


@pytest.mark.parametrize(
    ("bind", "url"),
    [("10.1.2.3", "http://10.1.2.3:16066"), ("::1", "http://[::1]:16066"), ("::", "http://127.0.0.1:16066")],
)
def test_the_worker_url_follows_a_specific_bind(bind: str, url: str) -> None:
    assert Settings(worker_web_bind=bind).worker_url() == url
