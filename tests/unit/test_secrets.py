"""No secret leaves through a repr, a status report, --help, a log record or a connection error.

Every password and key is configured with a recognisable value; each check then looks for all of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import certifi
import click
import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from elasticsearch import AsyncElasticsearch, Elasticsearch
from elasticsearch import ConnectionError as ElasticsearchConnectionError
from pydantic import SecretStr

from streams.auth import Authenticator
from streams.cli import COMMANDS, main
from streams.clients import async_elasticsearch_client, elasticsearch_client
from streams.settings import Settings, SettingsError, get_settings
from streams.sources.connect import SourceUnavailable, connect_mariadb, connect_postgres
from streams.stack import stack as stack_module

SECRETS = {
    "STREAMS_TICKETS_DSN": "postgresql://streams:ticketsPwQ7x1@127.0.0.1:1/tickets",
    "STREAMS_CRM_DSN": "postgresql://streams:crmPwQ7x2@127.0.0.1:1/crm",
    "STREAMS_WIKI_DSN": "mysql://streams:wikiPwQ7x3@127.0.0.1:1/wiki",
    "STREAMS_SOURCE_DSNS": json.dumps({"kb": "postgresql://streams:kbPwQ7x9@127.0.0.1:1/kb"}),
    "STREAMS_ELASTICSEARCH_PASSWORD": "esPwQ7x4",
    "STREAMS_KAFKA_SASL_PASSWORD": "kafkaPwQ7x5",
    "STREAMS_SEARCH_API_KEYS": json.dumps({"searchKeyQ7x6-0123456789": {"name": "bot", "groups": ["support"]}}),
    "STREAMS_SEARCH_JWT_SECRET": "jwtSecretQ7x7-" + "x" * 32,
}
# The values that must never show (the DSNs' passwords, not their harmless rest).
LEAKS = (
    "ticketsPwQ7x1",
    "crmPwQ7x2",
    "wikiPwQ7x3",
    "kbPwQ7x9",
    "esPwQ7x4",
    "kafkaPwQ7x5",
    "searchKeyQ7x6",
    "jwtSecretQ7x7",
)
ES_API_KEY = "esApiKeyQ7x8"


def assert_no_secret(text: str) -> None:
    found = [leak for leak in (*LEAKS, ES_API_KEY) if leak in text]
    assert not found, f"secrets in output: {found}"


def test_the_check_finds_a_leak() -> None:
    with pytest.raises(AssertionError, match="ticketsPwQ7x1"):
        assert_no_secret(f"connecting to {SECRETS['STREAMS_TICKETS_DSN']}")


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STREAMS_STACK_HOME", str(tmp_path))
    # Nothing listens on port 1: clients fail fast, and a unit test never reaches the local stack.
    monkeypatch.setenv("STREAMS_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("STREAMS_ELASTICSEARCH_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("STREAMS_ELASTICSEARCH_USERNAME", "elastic")
    monkeypatch.setenv("STREAMS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("STREAMS_KAFKA_SASL_USERNAME", "streams")
    monkeypatch.setenv("STREAMS_KAFKA_SSL_CAFILE", certifi.where())
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        get_settings.cache_clear()


def test_every_secret_reaches_its_client(secret_env: Settings) -> None:
    """The settings hold the values (so the checks below are not vacuous) and render them for clients."""
    settings = secret_env
    assert settings.dsn("tickets") == SECRETS["STREAMS_TICKETS_DSN"]
    assert settings.dsn("kb") == json.loads(SECRETS["STREAMS_SOURCE_DSNS"])["kb"]
    kafka = settings.kafka_config()
    assert kafka["sasl.password"] == "kafkaPwQ7x5" and kafka["security.protocol"] == "SASL_SSL"
    assert settings.elasticsearch_client_options()["basic_auth"] == ("elastic", "esPwQ7x4")


def test_repr_and_str_of_the_settings(secret_env: Settings) -> None:
    assert_no_secret(repr(secret_env))
    assert_no_secret(str(secret_env))
    assert_no_secret(secret_env.model_dump_json())


def test_stack_status_json(secret_env: Settings) -> None:
    report = stack_module.status(secret_env)
    text = json.dumps(report)
    assert_no_secret(text)
    assert report["source_dsns"]["tickets"] == "postgresql://streams:***@127.0.0.1:1/tickets"
    result = CliRunner().invoke(main, ["stack", "status", "--json"])
    assert result.output.strip(), result
    assert_no_secret(result.output)


def _commands(command: click.Command, path: list[str]) -> Iterator[list[str]]:
    yield path
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, name
            yield from _commands(sub, [*path, name])


def test_help_of_every_command(secret_env: Settings) -> None:
    paths = list(_commands(main, []))
    assert len(paths) > len(COMMANDS)  # the top level, each command, and the groups' subcommands
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert_no_secret(result.output)


def test_building_clients_logs_no_secret(
    secret_env: Settings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import faust

    caplog.set_level(logging.DEBUG)
    settings = secret_env
    producer = Producer(settings.kafka_config())
    producer.flush(0)
    AdminClient(settings.kafka_config())  # type: ignore[arg-type]
    credentials = settings.faust_broker_credentials()
    assert isinstance(credentials, faust.SASLCredentials) and credentials.password == "kafkaPwQ7x5"
    app = faust.App("secrets-test", broker="kafka://127.0.0.1:1", broker_credentials=credentials)
    assert_no_secret(repr(credentials) + repr(app.conf.broker_credentials))
    elasticsearch_client(settings).close()
    Authenticator.from_settings(settings)
    api_key_settings = settings.model_copy(
        update={
            "elasticsearch_username": None,
            "elasticsearch_password": None,
            "elasticsearch_api_key": SecretStr(ES_API_KEY),
            "elasticsearch_url": "https://127.0.0.1:1",
            "elasticsearch_ca_certs": Path(certifi.where()),
        }
    )
    client = elasticsearch_client(api_key_settings)
    assert_no_secret(repr(client))
    client.close()
    assert_no_secret(repr(async_elasticsearch_client(api_key_settings)))
    captured = capfd.readouterr()
    assert_no_secret(caplog.text + captured.out + captured.err)


def test_connection_errors_name_no_secret(secret_env: Settings, capfd: pytest.CaptureFixture[str]) -> None:
    settings = secret_env
    for connect, source in ((connect_postgres, "tickets"), (connect_postgres, "crm"), (connect_mariadb, "wiki")):
        with pytest.raises(SourceUnavailable) as caught:
            connect(getattr(settings, f"{source}_dsn"), name=source)
        assert "127.0.0.1:1" in str(caught.value)
        assert_no_secret(str(caught.value) + repr(caught.value) + str(caught.value.__cause__))

    api_key_settings = settings.model_copy(
        update={
            "elasticsearch_username": None,
            "elasticsearch_password": None,
            "elasticsearch_api_key": SecretStr(ES_API_KEY),
        }
    )
    for configured in (settings, api_key_settings):
        options = {**configured.elasticsearch_client_options(), "max_retries": 0}
        with Elasticsearch(**options) as client, pytest.raises(ElasticsearchConnectionError) as es_error:
            client.info()
        assert_no_secret(str(es_error.value) + repr(es_error.value))

    admin = AdminClient(settings.kafka_config())  # type: ignore[arg-type]
    with pytest.raises(KafkaException) as kafka_error:
        admin.list_topics(timeout=1)
    captured = capfd.readouterr()
    assert_no_secret(str(kafka_error.value) + captured.out + captured.err)


def test_async_client_takes_the_same_options(secret_env: Settings) -> None:
    client = async_elasticsearch_client(secret_env)
    assert isinstance(client, AsyncElasticsearch)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "STREAMS_KAFKA_SASL_USERNAME"),
        (
            {
                "elasticsearch_api_key": SecretStr(ES_API_KEY),
                "elasticsearch_username": "u",
                "elasticsearch_password": "esPwQ7x4",
            },
            "not both",
        ),
    ],
)
def test_settings_that_do_not_fit_are_errors_without_secrets(overrides: dict[str, object], message: str) -> None:
    settings = Settings(**overrides)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=message) as caught:
        settings.kafka_config()
        settings.elasticsearch_client_options()
    assert_no_secret(str(caught.value))
