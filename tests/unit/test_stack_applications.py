"""The real applications in the local stack: off unless named, started with what they depend on, their
configuration files valid for the language that reads them, and the clients that write through them."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from streams.settings import Settings
from streams.sources.write_applications import ApplicationError, Attachment, RtApi, TrytonApi, WikiApi
from streams.stack import packages, stack
from streams.stack.mediawiki import MediaWiki
from streams.stack.packages import ensure_application_packages
from streams.stack.request_tracker import RequestTracker
from streams.stack.runner import ServerFailed, StackError, generated_passwords
from streams.stack.tryton import Tryton

BASE_SERVERS = ["postgres", "mariadb", "elasticsearch", "kafka", "connect"]


def test_applications_are_off_unless_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert list(stack.servers(Settings(stack_home=tmp_path))) == BASE_SERVERS
    monkeypatch.setenv("STREAMS_STACK_APPS", "request-tracker, mediawiki")
    named = Settings(stack_home=tmp_path)
    assert named.stack_apps == ("request-tracker", "mediawiki")
    assert list(stack.servers(named)) == [*BASE_SERVERS, "request-tracker", "mediawiki"]


def test_an_unknown_application_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMS_STACK_APPS", "mediawiki,wordpress")
    # The error names the setting and what it takes; never the input (settings errors hide their input,
    # which may be a secret).
    with pytest.raises(ValidationError, match=r"(?s)stack_apps.*'mediawiki', 'request-tracker' or 'tryton'"):
        Settings()


def test_stack_down_stops_every_application_even_when_no_longer_named(tmp_path: Path) -> None:
    assert list(stack.servers(Settings(stack_home=tmp_path), every_application=True)) == [
        *BASE_SERVERS,
        "mediawiki",
        "request-tracker",
        "tryton",
    ]


def test_starting_a_subset_brings_its_dependencies_and_nothing_else(tmp_path: Path) -> None:
    every = stack.servers(Settings(stack_home=tmp_path, stack_apps=("mediawiki", "request-tracker")))
    assert list(stack.with_dependencies(every, ["request-tracker", "mediawiki"])) == [
        "postgres",
        "mariadb",
        "mediawiki",
        "request-tracker",
    ]
    assert list(stack.with_dependencies(every, ["mediawiki"])) == ["mariadb", "mediawiki"]
    with pytest.raises(StackError, match="no server 'wiki'"):
        stack.with_dependencies(every, ["wiki"])


def test_status_lists_the_applications_only_when_they_are_on(tmp_path: Path) -> None:
    assert "applications" not in stack.status(Settings(stack_home=tmp_path))
    report = stack.status(Settings(stack_home=tmp_path, stack_apps=("mediawiki", "request-tracker")))
    assert report["applications"]["mediawiki"]["api"] == "http://127.0.0.1:18090/api.php"
    assert report["applications"]["request-tracker"]["rest2"] == "http://127.0.0.1:18091/REST/2.0"
    assert report["applications"]["request-tracker"]["database"] == "postgresql://streams:***@127.0.0.1:15432/rt"
    assert report["servers"]["mediawiki"]["running"] is False
    assert report["healthy"] is False


def test_one_install_covers_every_named_application(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[list[str], list[str]]] = []
    monkeypatch.setattr(packages, "installed", lambda package: package == "php-cli")
    monkeypatch.setattr(packages, "_install", lambda missing, progress, debconf=(): asked.append((missing, debconf)))
    packages.ensure_application_packages(["mediawiki", "request-tracker", "mediawiki"], lambda line: None)
    assert asked == [
        (
            ["mediawiki", "request-tracker5", "rt5-db-postgresql", "w3m"],
            [
                "request-tracker5 request-tracker5/dbconfig-install boolean false",
                "request-tracker5 request-tracker5/install-cronjobs boolean false",
            ],
        )
    ]


def test_generated_passwords_are_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first = generated_passwords(path, ("admin_password",))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = generated_passwords(path, ("admin_password", "database_password"))
    assert again["admin_password"] == first["admin_password"]
    assert len(again["database_password"]) >= 20
    assert json.loads(path.read_text()) == again


def test_the_rt_site_config_is_perl_that_points_rt_at_the_stack(tmp_path: Path) -> None:
    rt = RequestTracker(Settings(stack_home=tmp_path, request_tracker_port=18555))
    rt.home.mkdir(parents=True)
    rt._write_config({"database_password": "it's a \\ secret", "admin_password": "x"})
    text = rt.site_config.read_text()
    assert stat.S_IMODE(rt.site_config.stat().st_mode) == 0o600
    assert "Set($DatabaseName, 'rt');" in text and "Set($DatabasePort, 15432);" in text
    assert "Set($WebBaseURL, 'http://127.0.0.1:18555');" in text
    assert f"$RT::VarPath = '{rt.home / 'var'}';" in text
    # The file is Perl that RT evaluates: Set() defined as RT does, the values must come back as written.
    program = (
        "my %set; sub Set(\\[$@%]@) { my ($ref, @value) = @_; $set{$ref} = $value[0] }"
        f" require '{rt.site_config}'; print $RT::VarPath, '|', (grep {{ /secret/ }} values %set)"
    )
    done = subprocess.run(["perl", "-e", program], capture_output=True, text=True, check=True)
    assert done.stdout == f"{rt.home / 'var'}|it's a \\ secret"


def test_the_mediawiki_stack_settings_are_php_that_points_the_wiki_at_the_stack(tmp_path: Path) -> None:
    ensure_application_packages(["mediawiki"], print)  # PHP comes with MediaWiki, as the stack installs it
    wiki = MediaWiki(Settings(stack_home=tmp_path, mediawiki_port=18556))
    wiki.home.mkdir(parents=True)
    wiki._write_config({"database_password": "x", "admin_password": "x"})
    # MediaWiki's wfLoadExtension, as a stand-in that says what it was asked to load.
    program = (
        "$loaded = []; function wfLoadExtension($name) { global $loaded; $loaded[] = $name; }"
        f" require '{wiki.stack_config_file}';"
        " echo $wgServer, '|', $wgDBserver, '|', $wgCacheDirectory, '|', implode(',', $loaded);"
    )
    done = subprocess.run(["php", "-r", program], capture_output=True, text=True, check=True)
    # Renameuser: how the wiki's owner renames an account (tests/applications/test_source_owner_erasure.py).
    assert done.stdout == f"http://127.0.0.1:18556|127.0.0.1:13306|{wiki.home / 'cache'}|Renameuser"


def _recorded_runs(monkeypatch: pytest.MonkeyPatch, module: str, output: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []

    def run(cmd: list[str], **kwargs: Any) -> str:
        runs.append({"cmd": cmd, **kwargs})
        return output

    monkeypatch.setattr(f"streams.stack.{module}.run", run)
    return runs


def test_an_owner_s_erasure_runs_the_wiki_s_own_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wiki = MediaWiki(Settings(stack_home=tmp_path))
    wiki.home.mkdir(parents=True)
    wiki.config_file.write_text("<?php\n")
    runs = _recorded_runs(monkeypatch, "mediawiki", "Ann was successfully renamed to Gone.\n")
    assert wiki.rename_user("Ann", "Gone") == "Ann was successfully renamed to Gone."
    assert runs[0]["cmd"][3:] == [
        "/usr/share/mediawiki/extensions/Renameuser/maintenance/renameUser.php",
        "--oldname=Ann",
        "--newname=Gone",
    ]
    # eval.php reports an exception and exits 0: only its marker says the real name was saved.
    with pytest.raises(ServerFailed, match="did not save \"O'Neil\"'s real name"):
        wiki.set_real_name("O'Neil", "")
    assert runs[1]["cmd"][3].endswith("/maintenance/eval.php")
    assert "User::newFromName('O\\'Neil')" in runs[1]["input"] and "setRealName('')" in runs[1]["input"]


def test_an_owner_s_shredding_runs_rt_shredder_on_the_stack_s_site_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = RequestTracker(Settings(stack_home=tmp_path))
    runs = _recorded_runs(monkeypatch, "request_tracker", "SQL dump file is '/tmp/t.sql'\n")
    rt.shred("Tickets=query,id = 7", tmp_path / "t.sql")
    cmd = runs[0]["cmd"]
    assert cmd[0] == "/usr/sbin/rt-shredder-5" and cmd[-2:] == ["--plugin", "Tickets=query,id = 7"]  # last
    assert cmd[cmd.index("--sqldump") + 1] == str(tmp_path / "t.sql") and "--force" in cmd
    assert runs[0]["env"]["RT_SITE_CONFIG"] == str(rt.site_config)


def _wiki(handler: Any) -> WikiApi:
    return WikiApi("http://wiki.test/api.php", transport=httpx.MockTransport(handler))


def _form(request: httpx.Request) -> dict[str, str]:
    return dict(httpx.QueryParams(request.content.decode())) if request.method == "POST" else dict(request.url.params)


def test_a_wiki_edit_logs_in_and_sends_the_csrf_token() -> None:
    sent: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        form = _form(request)
        sent.append(form)
        if form.get("meta") == "tokens":
            kind = form.get("type", "csrf")
            return httpx.Response(200, json={"query": {"tokens": {f"{kind}token": f"{kind}-token"}}})
        if form["action"] == "clientlogin":
            return httpx.Response(200, json={"clientlogin": {"status": "PASS", "username": "Alice"}})
        return httpx.Response(200, json={"edit": {"result": "Success", "newrevid": 42}})

    with _wiki(answer) as api:
        api.login("alice", "pw")
        assert api.user == "Alice"
        assert api.edit("Title", "text", summary="why") == 42
    login = next(form for form in sent if form.get("action") == "clientlogin")
    assert login["logintoken"] == "login-token" and login["password"] == "pw"
    edit = next(form for form in sent if form.get("action") == "edit")
    assert edit["token"] == "csrf-token" and edit["text"] == "text" and edit["summary"] == "why"


def test_a_refused_wiki_login_or_edit_is_an_application_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        form = _form(request)
        if form.get("meta") == "tokens":
            return httpx.Response(200, json={"query": {"tokens": {"logintoken": "t", "csrftoken": "t"}}})
        if form["action"] == "clientlogin":
            return httpx.Response(200, json={"clientlogin": {"status": "FAIL", "message": "Incorrect password"}})
        return httpx.Response(200, json={"error": {"code": "protectedpage", "info": "This page is protected"}})

    with _wiki(answer) as api:
        with pytest.raises(ApplicationError, match="Incorrect password"):
            api.login("alice", "wrong")
        with pytest.raises(ApplicationError, match="protectedpage"):
            api.edit("Main Page", "text")


def test_a_ticket_carries_its_requestors_cc_owner_and_attachments() -> None:
    bodies: list[tuple[str, dict[str, Any]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append((request.url.path, json.loads(request.content)))
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"agent:pw").decode()
        return httpx.Response(201, json={"id": "7", "type": "ticket"})

    with RtApi("http://rt.test/REST/2.0/", "agent", "pw", transport=httpx.MockTransport(answer)) as api:
        ticket = api.create_ticket(
            "General",
            "Lag",
            "Is it behind?",
            ["Ann <ann@example.com>", "bob@example.com"],
            cc=["carol@example.com"],
            owner="agent",
            attachments=[Attachment("a.bin", "application/octet-stream", b"\x00\x01")],
        )
        api.comment(ticket, "<p>note</p>", content_type="text/html")
    assert ticket == 7
    path, body = bodies[0]
    assert path == "/REST/2.0/ticket"
    assert body["Requestor"] == "Ann <ann@example.com>, bob@example.com"
    assert body["Cc"] == "carol@example.com" and body["Owner"] == "agent"
    assert body["Attachments"] == [{"FileName": "a.bin", "FileType": "application/octet-stream", "FileContent": "AAE="}]
    assert bodies[1] == ("/REST/2.0/ticket/7/comment", {"Content": "<p>note</p>", "ContentType": "text/html"})


def test_a_refused_rt_write_is_an_application_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "Permission Denied"})

    with RtApi("http://rt.test/REST/2.0", "guest", "pw", transport=httpx.MockTransport(answer)) as api:
        with pytest.raises(ApplicationError, match=r"403.*Permission Denied"):
            api.correspond(1, "hello")


def test_the_trytond_config_is_read_by_trytond_as_pointing_at_the_stack(tmp_path: Path) -> None:
    ensure_application_packages(["tryton"], print)  # trytond's own configuration parser reads it
    server = Tryton(Settings(stack_home=tmp_path, tryton_port=18557))
    server.home.mkdir(parents=True)
    server._write_config({"database_password": "it's a %s: / secret@", "admin_password": "x"})
    assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
    program = (
        "import sys; from trytond.config import config; config.update_etc(sys.argv[1]);"
        " print(config.get('database', 'uri'), config.get('database', 'path'), config.get('web', 'listen'), sep='|')"
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-c", program, str(server.config_file)], capture_output=True, text=True, check=True
    )
    uri, path, listen = done.stdout.strip().split("|")
    parts = urlsplit(uri)
    assert (parts.hostname, parts.port, parts.username) == ("127.0.0.1", 15432, "tryton")
    assert unquote(parts.password or "") == "it's a %s: / secret@"
    assert path == str(server.home / "attachments") and listen == "127.0.0.1:18557"


def _tryton(handler: Any) -> TrytonApi:
    return TrytonApi("http://tryton.test/", "tryton", transport=httpx.MockTransport(handler))


def test_tryton_calls_carry_the_session_and_the_user_s_context() -> None:
    calls: list[tuple[str, str, list[Any], str | None]] = []
    preferences = {"language": "en", "company": 1}
    results: dict[str, Any] = {
        "common.db.login": [3, "s3ss10n"],
        "model.res.user.get_preferences": preferences,
        "model.ir.note.create": [41],
    }

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append((request.url.path, body["method"], body["params"], request.headers.get("authorization")))
        return httpx.Response(200, json={"id": body["id"], "result": results.get(body["method"])})

    with _tryton(answer) as api:
        api.login("admin", "pw")
        note = api.create_note("party.party,12", "Prefers e-mail.")
        api.edit_note(note, "Calls after nine.")
        api.delete_note(note)
    assert calls[0][:3] == ("/tryton/", "common.db.login", ["admin", {"password": "pw"}, "en"])
    session = "Session " + base64.b64encode(b"admin:3:s3ss10n").decode()
    assert {call[3] for call in calls[1:]} == {session}
    assert [call[1:3] for call in calls[2:]] == [
        ("model.ir.note.create", [[{"resource": "party.party,12", "message": "Prefers e-mail."}], preferences]),
        ("model.ir.note.write", [[41], {"message": "Calls after nine."}, preferences]),
        ("model.ir.note.delete", [[41], preferences]),
    ]


def test_a_refused_tryton_login_or_write_is_an_application_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["method"] == "common.db.login":
            return httpx.Response(200, json={"id": body["id"], "result": None})
        error = ["UserError", ['A value is required for field "Resource" in "Note".', "", None]]
        return httpx.Response(200, json={"id": body["id"], "error": error})

    with _tryton(refuse) as api:
        with pytest.raises(ApplicationError, match="login as 'admin' refused"):
            api.login("admin", "wrong")
        with pytest.raises(ApplicationError, match=r"ir\.note\.create.*A value is required"):
            api.create_note("party.party,0", "text")
    with _tryton(lambda request: httpx.Response(502, text="bad gateway")) as api:
        with pytest.raises(ApplicationError, match="502"):
            api.delete_note(1)
