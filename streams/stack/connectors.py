"""Register the Debezium connectors in connectors/*.json with Kafka Connect, idempotently.

The JSON files keep hosts and secrets out: a value may hold `${<settings field>}` (for example
`${kafka_bootstrap}`) or `${source_dsn.<part>}` with part one of host, port, user, password, dbname:
a part of the DSN of the file's own source (`<source>.json`), so that a new source's file names no
setting of its own. `${<source>_dsn.<part>}` (for example `${tickets_dsn.host}`) names a source
explicitly. settings.connector_hosts overrides the host a source's DSN names (and "kafka" the
bootstrap), for a Connect worker that sees the databases under other names."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from streams.polling import poll
from streams.resources import connectors_dir
from streams.settings import Settings
from streams.stack.runner import Progress, StackError

PLACEHOLDER = re.compile(r"\$\{([a-z_]+)(?:\.([a-z]+))?\}")


class ConnectorFailed(StackError):
    """A connector or one of its tasks is FAILED, or never reached RUNNING."""


def connector_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json"))


OWN_DSN = "source_dsn"


def _dsn_part(settings: Settings, source: str, part: str) -> str:
    url = urlsplit(settings.dsn(source))
    values = {
        "host": settings.connector_hosts.get(source, url.hostname or ""),
        "port": str(url.port or ""),
        "user": unquote(url.username or ""),
        "password": unquote(url.password or ""),
        "dbname": url.path.lstrip("/"),
    }
    if part not in values:
        raise StackError(f"unknown placeholder part {part!r} (use one of {sorted(values)})")
    return values[part]


def render(config: dict[str, str], settings: Settings, source: str | None = None) -> dict[str, str]:
    """`config` with its placeholders filled; `source` is the connector's own source, which
    `${source_dsn.<part>}` reads."""

    def substitute(match: re.Match[str]) -> str:
        field, part = match.group(1), match.group(2)
        if part:
            if field == OWN_DSN:
                if source is None:
                    raise StackError(f"placeholder {match.group(0)} outside a <source>.json connector file")
                return _dsn_part(settings, source, part)
            if not field.endswith("_dsn"):
                raise StackError(f"placeholder {match.group(0)}: only a DSN has parts (source_dsn or <source>_dsn)")
            return _dsn_part(settings, field.removesuffix("_dsn"), part)
        if field not in Settings.model_fields:
            raise StackError(f"placeholder {match.group(0)} names no settings field")
        if field == "kafka_bootstrap":
            return settings.connector_hosts.get("kafka", settings.kafka_bootstrap)
        value = getattr(settings, field)
        # Connector configs are sent to Kafka Connect, which needs the secret itself.
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    return {key: PLACEHOLDER.sub(substitute, str(value)) for key, value in config.items()}


def with_kafka_security(config: dict[str, str], settings: Settings) -> dict[str, str]:
    """The connector's own Kafka clients get the project's Kafka security: Debezium's schema history
    (MariaDB keeps table schemas in a topic) opens a producer and a consumer outside Connect's, which
    inherit nothing from the worker. The JSON files stay free of credentials."""
    if "schema.history.internal.kafka.bootstrap.servers" not in config:
        return config
    security = settings.kafka_java_properties()
    return {
        **config,
        **{
            f"schema.history.internal.{client}.{key}": value
            for client in ("producer", "consumer")
            for key, value in security.items()
        },
    }


def with_topic_configs(config: dict[str, str], settings: Settings) -> dict[str, str]:
    """The topic configs every topic the project creates gets (min.insync.replicas when set), for the
    topics Debezium creates through Connect's topic.creation.default group."""
    extra = {f"topic.creation.default.{key}": value for key, value in settings.topic_configs().items()}
    return {**config, **extra}


def load(settings: Settings, directory: Path | None = None) -> dict[str, dict[str, str]]:
    """Every connector config of `directory` (default: the settings' connectors_dir), rendered: those
    of the configured sources (a real application's or an example source's only where it is enabled, see
    SourceMapping), and any without a mapping."""
    from streams.pipeline.document_mapping import load_mappings

    folder = directory or connectors_dir(settings)
    every = {path.name.removesuffix(".mapping.yaml") for path in folder.glob("*.mapping.yaml")}
    configured = (
        set(
            load_mappings(
                folder, settings.stack_apps, tuple(settings.source_dsns), examples=settings.example_sources
            ).names
        )
        if every
        else set()
    )
    connectors = {}
    for path in connector_files(folder):
        if path.stem in every and path.stem not in configured:
            continue
        spec = json.loads(path.read_text())
        rendered = with_topic_configs(render(spec["config"], settings, source=path.stem), settings)
        connectors[spec["name"]] = with_kafka_security(rendered, settings)
    return connectors


def _request(settings: Settings, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{settings.connect_url}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        raise StackError(
            f"Kafka Connect at {settings.connect_url} is not reachable ({exc}); is the stack up? (`streams stack up`)"
        ) from exc


def _get(settings: Settings, path: str) -> dict[str, Any] | None:
    """GET a Connect resource: its JSON, or None when Connect does not know it (404)."""
    code, body = _request(settings, "GET", path)
    if code == 404:
        return None
    if code != 200:
        raise StackError(f"GET {path} answered {code}: {body}")
    return body  # type: ignore[no-any-return]


def connector_status(settings: Settings, name: str) -> dict[str, Any] | None:
    return _get(settings, f"/connectors/{name}/status")


def connector_config(settings: Settings, name: str) -> dict[str, str] | None:
    """The connector's live config in Connect (None when not registered)."""
    return _get(settings, f"/connectors/{name}/config")


def _failure(name: str, status: dict[str, Any]) -> str | None:
    if status["connector"]["state"] == "FAILED":
        return f"connector {name} FAILED:\n{status['connector'].get('trace', '')}"
    for task in status.get("tasks", []):
        if task["state"] == "FAILED":
            return f"connector {name} task {task['id']} FAILED:\n{task.get('trace', '')}"
    return None


def _running(status: dict[str, Any]) -> bool:
    tasks = status.get("tasks", [])
    return status["connector"]["state"] == "RUNNING" and bool(tasks) and all(t["state"] == "RUNNING" for t in tasks)


def register(
    settings: Settings, progress: Progress, timeout_s: float = 120.0, directory: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Create or update every connector (PUT is idempotent), restart failed ones, and wait until every
    connector and task is RUNNING. Raises ConnectorFailed with the task's trace otherwise."""
    connectors = load(settings, directory)
    if not connectors:
        raise StackError(f"no connector configs in {directory}")
    for name, config in connectors.items():
        code, body = _request(settings, "PUT", f"/connectors/{name}/config", config)
        if code not in (200, 201):
            raise ConnectorFailed(f"connector {name}: PUT /connectors/{name}/config answered {code}: {body}")
        progress(f"connector {name}: {'created' if code == 201 else 'up to date'}")
        status = connector_status(settings, name)
        if status is not None and _failure(name, status):
            progress(f"connector {name}: was FAILED, restarting")
            restart(settings, name, only_failed=True)
            # The restart is asynchronous: until the task restarts, its status still says FAILED,
            # which the wait below would report as a failure of the restarted task.
            poll(lambda n=name, st=status: not _failure(n, connector_status(settings, n) or st), 15, 0.5)  # type: ignore[misc]
    pending = set(connectors)
    statuses: dict[str, dict[str, Any]] = {}

    def all_running() -> bool:
        for name in sorted(pending):
            status = connector_status(settings, name)
            if status is None:
                continue
            statuses[name] = status
            failure = _failure(name, status)
            if failure:
                raise ConnectorFailed(failure)
            if _running(status):
                progress(f"connector {name}: RUNNING")
                pending.discard(name)
        return not pending

    if not poll(all_running, timeout_s, 0.5):
        raise ConnectorFailed(
            f"connectors not RUNNING after {timeout_s:.0f}s: "
            + ", ".join(f"{n}: {statuses.get(n)}" for n in sorted(pending))
        )
    return statuses


def restart(settings: Settings, name: str, *, only_failed: bool) -> None:
    """Restart a connector and its tasks (only the failed ones, or all of them)."""
    flag = "true" if only_failed else "false"
    code, body = _request(settings, "POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed={flag}")
    if code not in (200, 202, 204):
        raise StackError(f"POST /connectors/{name}/restart answered {code}: {body}")


def status_all(settings: Settings, directory: Path | None = None) -> dict[str, Any]:
    return {name: connector_status(settings, name) for name in load(settings, directory)}


def not_running(report: dict[str, Any]) -> list[str]:
    """What `status_all`'s report says is wrong, one line per connector that is not registered or whose
    connector or tasks are not all RUNNING: empty when every change will be captured."""
    problems = []
    for name, state in report.items():
        if state is None:
            problems.append(f"{name}: not registered")
        elif not _running(state):
            tasks = ", ".join(f"{t['id']}={t['state']}" for t in state.get("tasks", [])) or "no tasks"
            problems.append(f"{name}: {state['connector']['state']} ({tasks})")
    return problems
