"""/search authenticates its caller and takes the groups from the credential, never from the request."""

from __future__ import annotations

import hashlib
import json
import stat
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from streams.agents import web
from streams.auth import (
    Authenticator,
    Caller,
    CredentialsConfigError,
    JwtOptions,
    Unauthorized,
    ensure_local_keys,
    local_key,
    parse_api_keys,
)
from streams.elastic.hybrid_index import SearchPage
from streams.settings import Settings

SUPPORT_KEY = "support-key-0123456789abcdef"
OPERATOR_KEY = "operator-key-0123456789abcdef"
HASHED_KEY = "billing-key-0123456789abcdef"
JWT_SECRET = "a-jwt-secret-long-enough-for-hs512-too-" + "x" * 32

KEYS = json.dumps(
    {
        SUPPORT_KEY: {"name": "helpdesk", "groups": ["support", "engineering"]},
        OPERATOR_KEY: {"name": "ops", "operator": True},
        "sha256:" + hashlib.sha256(HASHED_KEY.encode()).hexdigest(): {"name": "billing-bot", "groups": ["billing"]},
    }
)


SCHEMA = web.SearchSchema(("wiki", "tickets", "crm"))


def _authenticator(jwt_options: JwtOptions | None = None) -> Authenticator:
    return Authenticator(parse_api_keys(KEYS, "test keys"), jwt_options or JwtOptions(JWT_SECRET))


def _jwt(claims: dict[str, Any], secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    # Tokens in parametrize lists are minted at collection time, and the whole tree (integration tests
    # first) runs for longer than minutes before they are checked: a day keeps them valid.
    return jwt.encode({"sub": "agent-7", "exp": int(time.time()) + 86400, **claims}, secret, algorithm=algorithm)


def _plan(authorization: str | None, **query: str) -> web.SearchRequest | web.Rejection:
    return web.plan_search(_authenticator(), authorization, {"q": "printer", **query}, SCHEMA)


# -- no credential, bad credential: 401 --------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   "])
def test_no_bearer_token_is_401_with_a_challenge(header: str | None) -> None:
    plan = _plan(header)
    assert isinstance(plan, web.Rejection)
    assert plan.status == 401
    assert plan.body["error"] == "invalid_request"
    assert plan.headers["WWW-Authenticate"].startswith('Bearer realm="streams"')


@pytest.mark.parametrize(
    "token",
    [
        "not-a-key-anyone-configured",
        SUPPORT_KEY + "x",
        "sha256:" + hashlib.sha256(HASHED_KEY.encode()).hexdigest(),  # the digest is not the key
        _jwt({"groups": ["support"]}, secret="another-secret-" + "y" * 64),
        _jwt({"groups": ["support"], "exp": int(time.time()) - 3600}),
        _jwt({"groups": ["support"]}, algorithm="HS512"),
        jwt.encode({"sub": "x", "exp": int(time.time()) + 86400, "groups": ["support"]}, "", algorithm="none"),
        _jwt({}),  # no groups claim
        _jwt({"groups": "support"}),  # not a list
    ],
)
def test_an_invalid_token_is_401(token: str) -> None:
    plan = _plan(f"Bearer {token}")
    assert isinstance(plan, web.Rejection)
    assert plan.status == 401
    assert plan.body["error"] == "invalid_token"
    assert 'error="invalid_token"' in plan.headers["WWW-Authenticate"]


def test_the_credential_is_checked_before_the_parameters() -> None:
    plan = web.plan_search(_authenticator(), None, {}, SCHEMA)  # no q either: still 401, not 400
    assert isinstance(plan, web.Rejection) and plan.status == 401


def test_with_nothing_configured_every_request_is_refused() -> None:
    with pytest.raises(Unauthorized):
        Authenticator({}).authenticate(f"Bearer {SUPPORT_KEY}")


# -- the groups come from the credential ----------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "groups"),
    [
        (f"Bearer {SUPPORT_KEY}", ["engineering", "support"]),
        (f"bearer {SUPPORT_KEY}", ["engineering", "support"]),
        (f"Bearer {HASHED_KEY}", ["billing"]),
        (f"Bearer {_jwt({'groups': ['support']})}", ["support"]),
    ],
)
def test_the_group_filter_is_the_credentials_groups(authorization: str, groups: list[str]) -> None:
    plan = _plan(authorization)
    assert isinstance(plan, web.SearchRequest)
    assert plan.groups == groups
    assert not plan.caller.operator


@pytest.mark.parametrize(
    ("requested", "groups"),
    [("support", ["support"]), ("engineering,support", ["engineering", "support"]), ("", [])],
)
def test_groups_parameter_narrows_to_held_groups(requested: str, groups: list[str]) -> None:
    plan = _plan(f"Bearer {SUPPORT_KEY}", groups=requested)
    assert isinstance(plan, web.SearchRequest)
    assert plan.groups == groups


@pytest.mark.parametrize(
    ("requested", "named"),
    [("billing", "'billing'"), ("support,billing,sales", "'billing', 'sales'")],
)
def test_a_group_the_credential_does_not_hold_is_a_400_that_names_it(requested: str, named: str) -> None:
    plan = _plan(f"Bearer {SUPPORT_KEY}", groups=requested)
    assert isinstance(plan, web.Rejection) and plan.status == 400
    assert plan.body["error"] == f"unknown group {named}: this credential holds engineering, support"


def test_a_jwt_cannot_widen_its_groups_either() -> None:
    plan = _plan(f"Bearer {_jwt({'groups': ['support']})}", groups="support,billing")
    assert isinstance(plan, web.Rejection) and plan.status == 400
    assert "unknown group 'billing'" in plan.body["error"]


def test_the_unrestricted_view_needs_an_operator_key() -> None:
    operator = _plan(f"Bearer {OPERATOR_KEY}")
    assert isinstance(operator, web.SearchRequest)
    assert operator.caller.operator and operator.groups is None
    narrowed = _plan(f"Bearer {OPERATOR_KEY}", groups="billing")
    assert isinstance(narrowed, web.SearchRequest) and narrowed.groups == ["billing"]
    # Neither an operator claim in a JWT nor a caller without groups gets the unrestricted view.
    claimed = _plan(f"Bearer {_jwt({'groups': [], 'operator': True})}")
    assert isinstance(claimed, web.SearchRequest) and claimed.groups == []


def test_only_an_operator_caller_searches_unrestricted() -> None:
    assert Caller("c", frozenset()).search_groups(None) == []
    assert Caller("o", frozenset(), operator=True).search_groups(None) is None


@pytest.mark.parametrize("k", ["ten", "0", "101"])
def test_bad_k_is_400_after_authentication(k: str) -> None:
    plan = _plan(f"Bearer {SUPPORT_KEY}", k=k)
    assert isinstance(plan, web.Rejection) and plan.status == 400


# -- the page passes the derived groups to the search -----------------------------------------------


class _FakeWeb:
    def json(self, value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return SimpleNamespace(body=value, status=status, headers=headers or {})


async def test_the_search_page_searches_only_the_callers_groups() -> None:
    searched: list[Any] = []

    async def fake_encode_query(text: str) -> list[float]:
        return [0.0]

    def fake_search_target() -> tuple[str, Any]:
        return "streams-chunks-v1", SimpleNamespace(encode_query_async=fake_encode_query)

    async def fake_runtime() -> Any:
        return SimpleNamespace(search_target=fake_search_target, es=None)

    async def fake_search(
        es: Any, alias: str, query: str, vector: Any, k: int, sources: Any, groups: Any, **options: Any
    ) -> SearchPage:
        searched.append(groups)
        return SearchPage([], 0, 0)

    def request(authorization: str | None, **query: str) -> Any:
        return SimpleNamespace(
            method="GET", headers={"Authorization": authorization} if authorization else {}, query=query
        )

    async def answer(authorization: str | None, **query: str) -> Any:
        return await web.answer_search(
            _FakeWeb(), request(authorization, **query), _authenticator(), fake_runtime, fake_search, SCHEMA
        )

    refused = await answer(None, q="printer")
    assert refused.status == 401 and "WWW-Authenticate" in refused.headers and searched == []
    unheld = await answer(f"Bearer {SUPPORT_KEY}", q="printer", groups="support,billing")
    assert unheld.status == 400 and "unknown group 'billing'" in unheld.body["error"] and searched == []
    narrowed = await answer(f"Bearer {SUPPORT_KEY}", q="printer", groups="support")
    assert narrowed.status == 200 and narrowed.body["groups"] == ["support"] and narrowed.body["caller"] == "helpdesk"
    assert searched == [["support"]]


# -- the key table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "must be a JSON object"),
        (json.dumps({"short": {"name": "x"}}), "shorter than"),
        (json.dumps({SUPPORT_KEY: {"groups": []}}), "'name'"),
        (json.dumps({SUPPORT_KEY: {"name": "x", "groups": "support"}}), "'groups'"),
        (json.dumps({SUPPORT_KEY: {"name": "x", "operator": "yes"}}), "'operator'"),
        (json.dumps({"sha256:abc": {"name": "x"}}), "64 hex digits"),
    ],
)
def test_a_bad_key_table_is_an_error_that_never_quotes_a_key(table: str, message: str) -> None:
    with pytest.raises(CredentialsConfigError, match=message) as caught:
        parse_api_keys(table, "STREAMS_SEARCH_API_KEYS")
    assert SUPPORT_KEY not in str(caught.value) and 'short"' not in str(caught.value)


def test_a_short_jwt_secret_is_refused_without_quoting_it(tmp_path: Path) -> None:
    settings = Settings(stack_home=tmp_path, search_jwt_secret=SecretStr("too-short-secret"))
    with pytest.raises(CredentialsConfigError, match="at least 32 bytes") as caught:
        Authenticator.from_settings(settings)
    assert "too-short-secret" not in str(caught.value)


def test_settings_keys_and_key_file_are_both_read(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({OPERATOR_KEY: {"name": "ops", "operator": True}}))
    settings = Settings(
        stack_home=tmp_path,
        search_api_keys=SecretStr(json.dumps({SUPPORT_KEY: {"name": "h", "groups": ["support"]}})),
        search_api_keys_file=key_file,
    )
    authenticator = Authenticator.from_settings(settings)
    assert authenticator.authenticate(f"Bearer {SUPPORT_KEY}").groups == {"support"}
    assert authenticator.authenticate(f"Bearer {OPERATOR_KEY}").operator


def test_a_missing_key_file_named_in_the_settings_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsConfigError, match="does not exist"):
        Authenticator.from_settings(Settings(stack_home=tmp_path, search_api_keys_file=tmp_path / "nope.json"))


def test_the_local_stack_gets_an_operator_and_a_support_key(tmp_path: Path) -> None:
    settings = Settings(stack_home=tmp_path)
    path = ensure_local_keys(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert ensure_local_keys(settings).read_text() == first  # generated once
    authenticator = Authenticator.from_settings(settings)
    assert authenticator.authenticate(f"Bearer {local_key(settings, 'local-operator')}").operator
    support = authenticator.authenticate(f"Bearer {local_key(settings, 'local-support')}")
    assert support.groups == {"support"} and not support.operator


def test_a_key_file_named_in_the_settings_is_never_generated(tmp_path: Path) -> None:
    settings = Settings(stack_home=tmp_path, search_api_keys_file=tmp_path / "managed.json")
    ensure_local_keys(settings)
    assert not (tmp_path / "managed.json").exists()
