"""Kafka SASL/TLS and Elasticsearch API key/TLS settings, rendered for every client the project builds."""

from __future__ import annotations

import base64
from pathlib import Path

import certifi
import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr

from streams.settings import Settings, SettingsError

CA = Path(certifi.where())


def test_plaintext_by_default_adds_nothing() -> None:
    settings = Settings()
    assert settings.kafka_config(acks="all") == {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"}
    assert settings.faust_broker_credentials() is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_for_confluent_kafka_and_aiokafka(protocol: str, mechanism: str) -> None:
    settings = Settings(
        kafka_security_protocol=protocol,  # type: ignore[arg-type]
        kafka_sasl_mechanism=mechanism,  # type: ignore[arg-type]
        kafka_sasl_username="streams",
        kafka_sasl_password=SecretStr("s3cret"),
        kafka_ssl_cafile=CA,
    )
    config = settings.kafka_config()
    assert config["security.protocol"] == protocol
    sasl = (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"])
    assert sasl == (mechanism, "streams", "s3cret")
    assert config.get("ssl.ca.location") == (str(CA) if protocol == "SASL_SSL" else None)

    aiokafka = credentials_to_aiokafka_auth(settings.faust_broker_credentials())
    assert aiokafka["security_protocol"] == protocol
    assert aiokafka["sasl_mechanism"] == mechanism
    assert (aiokafka["sasl_plain_username"], aiokafka["sasl_plain_password"]) == ("streams", "s3cret")
    assert (aiokafka["ssl_context"] is not None) == (protocol == "SASL_SSL")


def test_tls_without_sasl() -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=CA)
    assert settings.kafka_config()["security.protocol"] == "SSL"
    assert settings.kafka_config()["ssl.ca.location"] == str(CA)
    credentials = settings.faust_broker_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


def test_sasl_without_a_password_is_an_error() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="streams")
    with pytest.raises(SettingsError, match="STREAMS_KAFKA_SASL_PASSWORD"):
        settings.kafka_config()
    with pytest.raises(SettingsError, match="STREAMS_KAFKA_SASL_PASSWORD"):
        settings.faust_broker_credentials()


def test_elasticsearch_api_key_and_tls() -> None:
    settings = Settings(
        elasticsearch_url="https://es.example:9200",
        elasticsearch_api_key=SecretStr("a2V5"),
        elasticsearch_ca_certs=CA,
        elasticsearch_ssl_assert_fingerprint="AB:CD",
    )
    assert settings.elasticsearch_client_options() == {
        "hosts": ["https://es.example:9200"],
        "request_timeout": 60,
        "api_key": "a2V5",
        "ca_certs": str(CA),
        "ssl_assert_fingerprint": "AB:CD",
    }


def test_elasticsearch_basic_auth() -> None:
    settings = Settings(elasticsearch_username="elastic", elasticsearch_password=SecretStr("pw"))
    options = settings.elasticsearch_client_options()
    assert options["basic_auth"] == ("elastic", "pw") and "api_key" not in options


def test_elastic_cloud_is_reached_by_cloud_id_and_api_key() -> None:
    from elasticsearch import Elasticsearch

    # A Cloud ID is "<deployment name>:<base64 of host$elasticsearch id$kibana id>".
    cloud_id = "streams-prod:" + base64.b64encode(b"eu-west-1.aws.found.io$abc123$def456").decode()
    settings = Settings(elasticsearch_cloud_id=cloud_id, elasticsearch_api_key=SecretStr("a2V5"))
    options = settings.elasticsearch_client_options()
    assert options["cloud_id"] == cloud_id and "hosts" not in options and options["api_key"] == "a2V5"
    client = Elasticsearch(**options)
    node = client.transport.node_pool.get()
    assert (node.config.host, node.config.port, node.config.scheme) == ("abc123.eu-west-1.aws.found.io", 443, "https")
    assert settings.elasticsearch_location() == "Elastic Cloud deployment 'streams-prod'"
    assert Settings().elasticsearch_location() == Settings().elasticsearch_url
