"""Security for the local Elasticsearch: users, TLS on HTTP, and how the stack itself authenticates.

The integ-test-zip distribution the stack runs carries the x-pack-core and x-pack-security modules, so
security works as in the full distribution under the basic license (file-realm users, API keys, TLS).
Like Kafka's SASL, it follows the client settings: security is on when they carry credentials
(`STREAMS_ELASTICSEARCH_USERNAME`/`_PASSWORD` or `_API_KEY`) or an `https://` URL. Then
- the stack's own superuser `streams-admin` (generated password, `<stack_home>/elasticsearch/admin.json`,
  readable by the owner alone) checks health and can create API keys (`create_api_key`);
- the settings' user, when named, is created as a superuser in the file realm with the settings' password;
- an `https://` URL turns on TLS for HTTP with a CA and node certificate generated once under
  `<stack_home>/elasticsearch/config/certs/`: clients trust `ca.crt` through `STREAMS_ELASTICSEARCH_CA_CERTS`.
An API key cannot exist before the server does: create one with `create_api_key` (or `POST /_security/api_key`
as streams-admin), then set `STREAMS_ELASTICSEARCH_API_KEY`.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streams.settings import Settings
from streams.stack import certificates
from streams.stack.runner import write_private

ADMIN_USER = "streams-admin"


def security_enabled(settings: Settings) -> bool:
    return bool(
        settings.elasticsearch_username
        or settings.elasticsearch_api_key is not None
        or urlsplit(settings.elasticsearch_url).scheme == "https"
    )


def tls_enabled(settings: Settings) -> bool:
    return urlsplit(settings.elasticsearch_url).scheme == "https"


def certs_dir(config_dir: Path) -> Path:
    return config_dir / "certs"


def admin_password(home: Path) -> str:
    """The stack's superuser password: generated once, kept readable by the owner alone."""
    path = home / "admin.json"
    try:
        return str(json.loads(path.read_text())["password"])
    except (OSError, ValueError, KeyError, TypeError):
        password = secrets.token_urlsafe(24)
        write_private(path, json.dumps({"username": ADMIN_USER, "password": password}))
        return password


def file_realm_users(settings: Settings, home: Path) -> dict[str, str]:
    """User -> password for the file realm: the stack's admin, and the settings' user when named."""
    users = {ADMIN_USER: admin_password(home)}
    if settings.elasticsearch_username and settings.elasticsearch_password is not None:
        users[settings.elasticsearch_username] = settings.elasticsearch_password.get_secret_value()
    return users


def yml_lines(settings: Settings) -> list[str]:
    if not security_enabled(settings):
        return ["xpack.security.enabled: false"]
    lines = [
        "xpack.security.enabled: true",
        "xpack.security.authc.api_key.enabled: true",
        # One node on loopback: nothing travels between nodes, so transport stays plain.
        "xpack.security.transport.ssl.enabled: false",
    ]
    if tls_enabled(settings):
        lines += [
            "xpack.security.http.ssl.enabled: true",
            "xpack.security.http.ssl.certificate: certs/node.crt",
            "xpack.security.http.ssl.key: certs/node.key",
            "xpack.security.http.ssl.certificate_authorities: [certs/ca.crt]",
        ]
    else:
        lines.append("xpack.security.http.ssl.enabled: false")
    return lines


def ensure_certificates(settings: Settings, config_dir: Path) -> Path:
    """A CA and a node certificate for the URL's host (and 127.0.0.1, localhost), made once; the CA's path."""
    host = urlsplit(settings.elasticsearch_url).hostname or "127.0.0.1"
    return certificates.ensure(certs_dir(config_dir), host).ca


def admin_request(settings: Settings, home: Path, config_dir: Path, method: str, path: str, body: Any = None) -> Any:
    """A JSON request to the local Elasticsearch as the stack's admin (TLS verified against the stack's CA)."""
    request = urllib.request.Request(
        f"{settings.elasticsearch_url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", **admin_headers(settings, home)},
    )
    with urllib.request.urlopen(request, timeout=10, context=ssl_context(settings, config_dir)) as response:
        return json.load(response)


def admin_headers(settings: Settings, home: Path) -> dict[str, str]:
    if not security_enabled(settings):
        return {}
    token = base64.b64encode(f"{ADMIN_USER}:{admin_password(home)}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def ssl_context(settings: Settings, config_dir: Path) -> ssl.SSLContext | None:
    if not tls_enabled(settings):
        return None
    return ssl.create_default_context(cafile=str(certs_dir(config_dir) / "ca.crt"))


def create_api_key(settings: Settings, name: str, *, expiration: str | None = "1d") -> str:
    """A new API key (base64 `id:key`, what STREAMS_ELASTICSEARCH_API_KEY takes) made by the stack's admin."""
    home = settings.stack_home / "elasticsearch"
    body: dict[str, Any] = {"name": name}
    if expiration is not None:
        body["expiration"] = expiration
    answer = admin_request(settings, home, home / "config", "POST", "/_security/api_key", body)
    return str(answer["encoded"])
