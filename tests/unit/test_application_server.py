"""What the source applications of the local stack share: how each is judged healthy from the version it
answers with, how its installer is run once and only when it did not finish, and how passwords reach the
installer through files that do not outlive it."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.settings import Settings
from streams.stack import application_server
from streams.stack.application_server import ApplicationServer
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import RequestTracker
from streams.stack.tryton import Tryton

# Each application's answer to its version request, as the real servers give it.
VERSION_ANSWERS: list[tuple[Callable[[Settings], ApplicationServer], Any]] = [
    (MediaWiki, {"query": {"general": {"generator": "MediaWiki 1.39.10"}}}),
    (RequestTracker, {"Version": "5.0.3"}),
    (Tryton, {"id": 0, "result": "6.0.29"}),
]


def _answering(server: ApplicationServer, monkeypatch: pytest.MonkeyPatch, answer: httpx.Response) -> None:
    monkeypatch.setattr(server, "_version_request", lambda: answer)


@pytest.mark.parametrize(("kind", "body"), VERSION_ANSWERS, ids=["mediawiki", "request-tracker", "tryton"])
def test_an_application_is_healthy_only_when_it_answers_with_its_own_version(
    kind: Callable[[Settings], ApplicationServer], body: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = kind(Settings(stack_home=tmp_path))
    server.credentials()  # RT asks for its version as its administrator, with the password prepare keeps
    _answering(server, monkeypatch, httpx.Response(200, json=body))
    assert server.healthy()
    _answering(server, monkeypatch, httpx.Response(503, json=body))
    assert not server.healthy()
    _answering(server, monkeypatch, httpx.Response(200, json={"error": "not yet"}))
    assert not server.healthy()
    _answering(server, monkeypatch, httpx.Response(200, text="<html>a proxy's page</html>"))
    assert not server.healthy()
    _answering(server, monkeypatch, httpx.Response(200, json="a string, not an object"))
    assert not server.healthy()


@pytest.mark.parametrize("kind", [MediaWiki, RequestTracker, Tryton], ids=["mediawiki", "request-tracker", "tryton"])
def test_another_program_s_version_on_the_port_is_not_healthy(
    kind: Callable[[Settings], ApplicationServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = kind(Settings(stack_home=tmp_path))
    server.credentials()
    other = {"query": {"general": {"generator": "9.9"}}, "Version": "9.9", "result": "9.9"}
    _answering(server, monkeypatch, httpx.Response(200, json=other))
    assert not server.healthy()


def test_an_unreachable_application_is_not_healthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wiki = MediaWiki(Settings(stack_home=tmp_path))

    def refused() -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(wiki, "_version_request", refused)
    assert not wiki.healthy()


def test_rt_is_not_healthy_before_its_password_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = RequestTracker(Settings(stack_home=tmp_path))
    _answering(rt, monkeypatch, httpx.Response(200, json={"Version": "5.0.3"}))
    assert not rt.healthy()
    assert not rt.credentials_file.exists()  # asking did not make one behind prepare's back


def test_status_gives_each_application_s_urls_and_its_database_without_the_password(tmp_path: Path) -> None:
    tryton = Tryton(Settings(stack_home=tmp_path, tryton_port=18557)).application()
    assert tryton == {
        "url": "http://127.0.0.1:18557",
        "jsonrpc": "http://127.0.0.1:18557/tryton/",
        "database": "postgresql://streams:***@127.0.0.1:15432/tryton",
        "credentials": str(tmp_path / "tryton" / "credentials.json"),
    }
    assert MediaWiki(Settings(stack_home=tmp_path)).application()["database"].endswith("@127.0.0.1:13306/mediawiki")


class _Recorder(ApplicationServer):
    """An application whose installer only records that it ran."""

    name = "recorder"
    database = "recorded"
    database_user = "recorder"
    admin_user = "admin"
    reader_source = "tickets"
    version_path = ("version",)
    version_prefix = "1."

    def __init__(self, settings: Settings, *, set_up: bool) -> None:
        super().__init__(settings, 18999)
        self.was_set_up = set_up
        self.configs: list[dict[str, str]] = []
        self.setups: list[dict[str, str]] = []

    def _directories(self) -> tuple[Path, ...]:
        return (self.home / "cache",)

    def _write_config(self, credentials: dict[str, str]) -> None:
        self.configs.append(credentials)

    def _is_set_up(self) -> bool:
        return self.was_set_up

    def _set_up(self, credentials: dict[str, str], progress: Any) -> None:
        self.setups.append(credentials)

    def _version_request(self) -> httpx.Response:
        raise AssertionError("not asked here")

    def _api_urls(self) -> dict[str, str]:
        return {}

    def command(self) -> list[str]:
        return ["true"]


@pytest.fixture
def no_packages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    asked: list[tuple[str, ...]] = []
    monkeypatch.setattr(application_server, "ensure_application_packages", lambda apps, progress: asked.append(apps))
    monkeypatch.setattr(application_server, "service_user", lambda: None)
    return asked


def test_prepare_writes_the_config_every_time_and_installs_only_what_did_not_finish(
    tmp_path: Path, no_packages: list[tuple[str, ...]]
) -> None:
    fresh = _Recorder(Settings(stack_home=tmp_path), set_up=False)
    fresh.prepare(lambda line: None)
    assert no_packages == [("recorder",)]
    assert fresh.setups == fresh.configs and len(fresh.setups) == 1
    assert set(fresh.setups[0]) == {"admin_user", "database_user", "admin_password", "database_password"}
    assert (fresh.home / "cache").is_dir() and fresh.logs_dir.is_dir()

    done = _Recorder(Settings(stack_home=tmp_path), set_up=True)
    done.prepare(lambda line: None)
    assert done.setups == [] and done.configs == fresh.configs  # the same passwords, kept from the first


def test_an_installer_s_password_files_are_private_and_gone_even_when_it_fails(tmp_path: Path) -> None:
    server = _Recorder(Settings(stack_home=tmp_path), set_up=False)
    secret = server.home / ".secret"
    with pytest.raises(RuntimeError, match="installer failed"), server._private_files({secret: "s3cret\n"}):
        assert secret.read_text() == "s3cret\n"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        raise RuntimeError("installer failed")
    assert not secret.exists()
