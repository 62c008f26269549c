"""Who is calling /search, and which access groups that gives them.

A caller presents `Authorization: Bearer <token>`. The token is either
- an API key from the settings (`STREAMS_SEARCH_API_KEYS`, or the JSON file `STREAMS_SEARCH_API_KEYS_FILE`):
  `{"<key>": {"name": "helpdesk-bot", "groups": ["support"]}}`; a key may be written as
  `"sha256:<hex digest of the key>"` so that the settings never hold it in clear. Only an API key flagged
  `"operator": true` gets the unrestricted view;
- or an HS256 JWT signed with `STREAMS_SEARCH_JWT_SECRET`, whose `groups` claim lists the caller's groups
  (`sub` names the caller, `exp` is required). A JWT is never an operator credential.

The groups come from the credential only. A `groups=` query parameter can narrow them but never widen
them (/search refuses a group the credential does not hold; the filter here is the intersection all
the same); for an operator it picks the groups whose view to show.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from streams.errors import StreamsError
from streams.settings import Settings

log = logging.getLogger(__name__)

JWT_ALGORITHMS = ["HS256"]  # pinned: the algorithm is never taken from the token's header
MIN_KEY_LENGTH = 16
MIN_JWT_SECRET_BYTES = 32
REALM = "streams"


class CredentialsConfigError(StreamsError):
    """The configured search credentials cannot be read. Messages never quote a key."""

    stage = "config"


class Unauthorized(StreamsError):
    """The request carries no valid credential (HTTP 401)."""

    stage = "auth"

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error  # RFC 6750: "invalid_request" (no or malformed header) or "invalid_token"
        self.description = description

    def challenge(self) -> str:
        """The WWW-Authenticate header value (RFC 6750)."""
        return f'Bearer realm="{REALM}", error="{self.error}", error_description="{self.description}"'

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Caller:
    name: str
    groups: frozenset[str]
    operator: bool = False

    def search_groups(self, requested: Sequence[str] | None) -> list[str] | None:
        """The groups filter for this caller's search; None (unrestricted) only for an operator.

        `requested` is the `groups=` query parameter: it narrows the credential's groups, never widens them.
        """
        if self.operator:
            return None if requested is None else sorted(set(requested))
        if requested is None:
            return sorted(self.groups)
        return sorted(self.groups & set(requested))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(text: str, origin: str) -> dict[str, Caller]:
    """{sha256 hex digest of the key: caller} from the JSON text of an API key table."""
    try:
        table = json.loads(text)
    except ValueError as exc:
        # json's message gives a position only, never the document, so it cannot leak a key.
        raise CredentialsConfigError(f"{origin} is not valid JSON: {exc}") from None
    if not isinstance(table, dict):
        raise CredentialsConfigError(f'{origin} must be a JSON object {{"<key>": {{"name": ..., "groups": [...]}}}}')
    callers: dict[str, Caller] = {}
    for number, (key, entry) in enumerate(table.items(), start=1):
        where = f"{origin}, entry {number}"  # never the key itself
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise CredentialsConfigError(f"{where}: needs a non-empty string 'name'")
        where = f"{origin}, entry {entry['name']!r}"
        groups = entry.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            raise CredentialsConfigError(f"{where}: 'groups' must be a list of non-empty strings")
        operator = entry.get("operator", False)
        if not isinstance(operator, bool):
            raise CredentialsConfigError(f"{where}: 'operator' must be true or false")
        if key.startswith("sha256:"):
            digest = key.removeprefix("sha256:").lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise CredentialsConfigError(f"{where}: a 'sha256:' key needs 64 hex digits")
        elif len(key) < MIN_KEY_LENGTH:
            raise CredentialsConfigError(f"{where}: the key is shorter than {MIN_KEY_LENGTH} characters")
        else:
            digest = _digest(key)
        callers[digest] = Caller(entry["name"], frozenset(groups), operator)
    return callers


@dataclass(frozen=True)
class JwtOptions:
    secret: str
    audience: str | None = None
    issuer: str | None = None
    leeway_s: float = 30.0


class Authenticator:
    """Turns an Authorization header into a Caller, or raises Unauthorized."""

    def __init__(self, api_keys: Mapping[str, Caller], jwt_options: JwtOptions | None = None) -> None:
        self._api_keys = dict(api_keys)
        self._jwt = jwt_options

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        api_keys: dict[str, Caller] = {}
        if settings.search_api_keys is not None:
            api_keys.update(parse_api_keys(settings.search_api_keys.get_secret_value(), "STREAMS_SEARCH_API_KEYS"))
        path = settings.search_api_keys_path()
        if path.exists():
            api_keys.update(parse_api_keys(path.read_text(), str(path)))
        elif settings.search_api_keys_file is not None:
            raise CredentialsConfigError(f"STREAMS_SEARCH_API_KEYS_FILE names {path}, which does not exist")
        jwt_options = None
        if settings.search_jwt_secret is not None:
            secret = settings.search_jwt_secret.get_secret_value()
            # RFC 7518 3.2: an HS256 key must be at least as long as the hash. Checked here, not by pydantic,
            # whose validation errors quote the input value.
            if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
                raise CredentialsConfigError(f"STREAMS_SEARCH_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
            jwt_options = JwtOptions(secret, settings.search_jwt_audience, settings.search_jwt_issuer)
        authenticator = cls(api_keys, jwt_options)
        log.info("search API: %s", authenticator.describe())
        return authenticator

    def describe(self) -> str:
        """What this authenticator accepts, for the logs (names, never keys)."""
        if not self._api_keys and self._jwt is None:
            return "no credentials configured: every /search request gets 401"
        names = sorted(f"{c.name} (operator)" if c.operator else c.name for c in self._api_keys.values())
        jwt_text = "HS256 JWTs" if self._jwt else "no JWTs"
        return f"{len(names)} API keys ({', '.join(names) or 'none'}) and {jwt_text}"

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthorized("invalid_request", "send 'Authorization: Bearer <token>' (an API key or a JWT)")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("invalid_request", "the Authorization header must be 'Bearer <token>'")
        if token.count(".") == 2 and self._jwt is not None:
            return self._from_jwt(token, self._jwt)
        caller = self._from_api_key(token)
        if caller is None:
            raise Unauthorized("invalid_token", "unknown API key or unverifiable token")
        return caller

    def _from_api_key(self, token: str) -> Caller | None:
        # Compare with every entry, without stopping early, so the time taken says nothing about the keys.
        presented = _digest(token)
        found = None
        for digest, caller in self._api_keys.items():
            if hmac.compare_digest(digest, presented):
                found = caller
        return found

    @staticmethod
    def _from_jwt(token: str, options: JwtOptions) -> Caller:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                options.secret,
                algorithms=JWT_ALGORITHMS,
                audience=options.audience,
                issuer=options.issuer,
                leeway=options.leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": options.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("invalid_token", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("invalid_token", f"the token is not valid: {exc}") from None
        groups = claims.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            raise Unauthorized("invalid_token", "the token's 'groups' claim must be a list of group names")
        return Caller(str(claims["sub"]), frozenset(groups), operator=False)


def ensure_local_keys(settings: Settings) -> Path:
    """The local stack's API key file, generated once: an operator key, a `support` key (the example
    sources' support group) and a `staff` key (MediaWiki's main namespace and RT's General queue).

    For development and the integration tests only; the file is readable by its owner alone. A key file
    named in the settings is the operator's to manage and is never generated.
    """
    path = settings.search_api_keys_path()
    if settings.search_api_keys_file is not None or path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    table = {
        secrets.token_urlsafe(32): {"name": "local-operator", "groups": [], "operator": True},
        secrets.token_urlsafe(32): {"name": "local-support", "groups": ["support"]},
        secrets.token_urlsafe(32): {"name": "local-staff", "groups": ["namespace:0", "queue:General"]},
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path
    with os.fdopen(fd, "w") as out:
        json.dump(table, out, indent=2)
    log.info("generated the local stack's search API keys in %s (local-operator, local-support, local-staff)", path)
    return path


def local_key(settings: Settings, name: str) -> str:
    """The key named `name` in the local stack's key file (for the demo and the tests)."""
    path = settings.search_api_keys_path()
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialsConfigError(f"cannot read the local search keys in {path}: {exc}") from exc
    for key, entry in table.items():
        if isinstance(entry, dict) and entry.get("name") == name and not key.startswith("sha256:"):
            return str(key)
    raise CredentialsConfigError(f"{path} has no clear-text key named {name!r}")
