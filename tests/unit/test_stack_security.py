"""What the local stack writes for a secured Kafka (SASL/SCRAM) and Elasticsearch (users, TLS), and what it
refuses. The servers themselves are exercised by tests/integration/test_secured_stack.py."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from streams.clients import check_elasticsearch_login, check_kafka_login
from streams.settings import Settings, jaas_quote
from streams.stack import connectors
from streams.stack import elasticsearch_security as es_security
from streams.stack.connect import worker_security
from streams.stack.kafka import BROKER_USER, Kafka, properties_text, sasl_enabled
from streams.stack.runner import StackError

PASSWORD = 'pa"ss\\word'


def sasl_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "stack_home": tmp_path,
        "kafka_bootstrap": "127.0.0.1:19092",
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "streams",
        "kafka_sasl_password": SecretStr(PASSWORD),
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_plaintext_broker_keeps_its_plaintext_listener(tmp_path: Path) -> None:
    server = properties(Kafka(Settings(stack_home=tmp_path)).server_properties())
    assert server["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert not any("sasl" in key for key in server)


def test_sasl_broker_has_no_unauthenticated_listener(tmp_path: Path) -> None:
    kafka = Kafka(sasl_settings(tmp_path))
    server = properties(kafka.server_properties())
    assert server["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert server["listener.security.protocol.map"] == "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    assert server["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert server["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert server["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert server["sasl.mechanism.controller.protocol"] == "PLAIN"
    broker_login = server["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert f'username="{BROKER_USER}"' in broker_login
    # The client user's password is a SCRAM credential in the metadata log, never in the broker's config.
    assert PASSWORD not in kafka.server_properties() and 'pa\\\\"ss' not in kafka.server_properties()
    assert set(kafka.scram_users()) == {"streams", BROKER_USER}
    assert stat.S_IMODE(kafka.internal_credentials_file.stat().st_mode) == 0o600


def test_broker_passwords_are_generated_once(tmp_path: Path) -> None:
    first = Kafka(sasl_settings(tmp_path)).internal_credentials()
    assert Kafka(sasl_settings(tmp_path)).internal_credentials() == first


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs STREAMS_KAFKA_SSL_CAFILE: the local stack makes its CA"),
        ({"kafka_security_protocol": "SSL"}, "TLS without SASL needs a broker you provide"),
        ({"kafka_sasl_mechanism": "PLAIN"}, "SCRAM-SHA-512 or SCRAM-SHA-256"),
        ({"kafka_sasl_password": None}, "STREAMS_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_username": BROKER_USER}, "the broker's own user"),
    ],
)
def test_what_the_local_broker_cannot_serve_is_refused(
    tmp_path: Path, overrides: dict[str, object], expected: str
) -> None:
    with pytest.raises(StackError, match=expected):
        sasl_enabled(sasl_settings(tmp_path, **overrides))


def test_plaintext_needs_nothing(tmp_path: Path) -> None:
    assert sasl_enabled(Settings(stack_home=tmp_path)) is False


def test_sasl_ssl_listener_speaks_tls_with_the_stacks_own_certificate(tmp_path: Path) -> None:
    settings = sasl_settings(
        tmp_path, kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=tmp_path / "kafka" / "certs" / "ca.crt"
    )
    kafka = Kafka(settings)
    properties = kafka.server_properties()
    assert "listeners=SASL_SSL://127.0.0.1:" in properties and "CONTROLLER:SASL_PLAINTEXT" in properties
    assert "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config" in properties
    key_store = tmp_path / "kafka" / "certs" / "node.pem"
    assert f"ssl.keystore.location={key_store}" in properties and "ssl.keystore.type=PEM" in properties
    pem = key_store.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----") and pem.count("BEGIN CERTIFICATE") == 2  # key, node, CA
    assert stat.S_IMODE(key_store.stat().st_mode) == 0o600
    assert settings.kafka_ssl_cafile is not None and settings.kafka_ssl_cafile.exists()
    # The storage holds the SCRAM users whatever the listener speaks: no reformat to turn TLS on or off.
    assert kafka.storage_security() == Kafka(sasl_settings(tmp_path)).storage_security()


def test_storage_formatted_for_other_users_is_refused_before_start(tmp_path: Path) -> None:
    kafka = Kafka(sasl_settings(tmp_path))
    wanted = kafka.storage_security()
    # No record: the storage was formatted before the stack knew SASL, so it has no SCRAM users.
    with pytest.raises(StackError, match="formatted for PLAINTEXT") as refused:
        kafka.check_storage_security(wanted)
    assert "STREAMS_STACK_HOME" in str(refused.value)

    kafka.storage_security_file.write_text(json.dumps(wanted))
    kafka.check_storage_security(wanted)  # the same users and passwords: fine

    other = Kafka(sasl_settings(tmp_path, kafka_sasl_password=SecretStr("Zx9-other-pw")))
    with pytest.raises(StackError, match="or another password") as refused:
        other.check_storage_security(other.storage_security())
    assert "Zx9-other-pw" not in str(refused.value) and PASSWORD not in str(refused.value)
    assert PASSWORD not in kafka.storage_security_file.read_text()


def test_properties_and_jaas_escaping() -> None:
    assert jaas_quote('a"b\\c') == '"a\\"b\\\\c"'
    # java.util.Properties reads "\\" as one backslash, so a JAAS line's backslashes are doubled again.
    assert properties_text({"k": 'x="a\\"b"', "lead": " space"}) == 'k=x="a\\\\"b"\nlead=\\ space\n'


def test_connect_worker_and_its_clients_authenticate(tmp_path: Path) -> None:
    security = worker_security(sasl_settings(tmp_path))
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert security[f"{prefix}security.protocol"] == "SASL_PLAINTEXT"
        assert security[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert security[f"{prefix}sasl.jaas.config"] == (
            'org.apache.kafka.common.security.scram.ScramLoginModule required username="streams"'
            ' password="pa\\"ss\\\\word";'
        )
    assert worker_security(Settings(stack_home=tmp_path)) == {}


def test_java_clients_trust_the_ca_file_over_tls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr("p"),
        kafka_ssl_cafile=ca,
    )
    java = settings.kafka_java_properties()
    assert java["ssl.truststore.type"] == "PEM" and java["ssl.truststore.location"] == str(ca)
    assert java["sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")


def test_debezium_schema_history_clients_get_the_kafka_security(tmp_path: Path) -> None:
    rendered = connectors.load(sasl_settings(tmp_path))
    wiki = rendered["wiki"]
    for client in ("producer", "consumer"):
        assert wiki[f"schema.history.internal.{client}.security.protocol"] == "SASL_PLAINTEXT"
        assert wiki[f"schema.history.internal.{client}.sasl.mechanism"] == "SCRAM-SHA-512"
        assert "ScramLoginModule" in wiki[f"schema.history.internal.{client}.sasl.jaas.config"]
    # PostgreSQL connectors keep no schema history: nothing added; and nothing at all for PLAINTEXT.
    assert not any(key.startswith("schema.history") for key in rendered["tickets"])
    plain = connectors.load(Settings(stack_home=tmp_path))["wiki"]
    assert not any(".security.protocol" in key for key in plain)


def test_login_check_decides_nothing_when_no_broker_answers() -> None:
    # Port 1 refuses at once: "brokers down" is not a refused login, so the check returns, quickly.
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr("p"),
    )
    started = time.monotonic()
    check_kafka_login(settings, timeout_s=20)
    assert time.monotonic() - started < 15
    check_kafka_login(Settings(kafka_bootstrap="127.0.0.1:1"))  # PLAINTEXT: no login to check


# -- Elasticsearch ---------------------------------------------------------------------------------


def test_elasticsearch_login_check_decides_nothing_when_the_server_is_away() -> None:
    check_elasticsearch_login(Settings(elasticsearch_url="http://127.0.0.1:1", elasticsearch_api_key=SecretStr("x")))


def test_elasticsearch_security_follows_the_client_settings(tmp_path: Path) -> None:
    assert es_security.yml_lines(Settings()) == ["xpack.security.enabled: false"]
    with_user = Settings(elasticsearch_username="streams", elasticsearch_password=SecretStr("secret-pw"))
    assert "xpack.security.enabled: true" in es_security.yml_lines(with_user)
    assert "xpack.security.http.ssl.enabled: false" in es_security.yml_lines(with_user)
    assert es_security.security_enabled(Settings(elasticsearch_api_key=SecretStr("aWQ6a2V5")))
    tls = es_security.yml_lines(Settings(elasticsearch_url="https://127.0.0.1:19200"))
    assert "xpack.security.http.ssl.enabled: true" in tls
    assert "xpack.security.http.ssl.certificate: certs/node.crt" in tls

    users = es_security.file_realm_users(with_user, tmp_path)
    assert users["streams"] == "secret-pw" and set(users) == {es_security.ADMIN_USER, "streams"}
    assert stat.S_IMODE((tmp_path / "admin.json").stat().st_mode) == 0o600
    assert es_security.file_realm_users(with_user, tmp_path) == users  # the admin password is kept


def test_generated_certificates_chain_to_the_ca_and_name_loopback(tmp_path: Path) -> None:
    settings = Settings(elasticsearch_url="https://127.0.0.1:19200")
    ca_path = es_security.ensure_certificates(settings, tmp_path)
    certs = es_security.certs_dir(tmp_path)
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    node = x509.load_pem_x509_certificate((certs / "node.crt").read_bytes())
    assert node.issuer == ca.subject
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(node.signature, node.tbs_certificate_bytes, ec.ECDSA(node.signature_hash_algorithm))  # type: ignore[arg-type]
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert stat.S_IMODE((certs / "node.key").stat().st_mode) == 0o600
    before = ca_path.read_bytes()
    es_security.ensure_certificates(settings, tmp_path)
    assert ca_path.read_bytes() == before  # made once: clients keep trusting the same CA


def test_a_lasting_refusal_fails_the_broker_health_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.clients
    import streams.stack.kafka as kafka_module
    from streams.clients import KafkaAuthenticationFailed
    from streams.stack.runner import ServerFailed

    def refuse(settings: Settings) -> None:
        raise KafkaAuthenticationFailed("Kafka at 127.0.0.1:19092 refused SASL user 'streams'")

    monkeypatch.setattr(kafka_module, "port_open", lambda host, port: True)
    monkeypatch.setattr(streams.clients, "kafka_admin", refuse)
    kafka = Kafka(sasl_settings(tmp_path))
    assert kafka.healthy() is False  # a broker that just opened its port may not have loaded its users yet
    monkeypatch.setattr(kafka_module, "AUTH_GRACE_S", 0.0)
    with pytest.raises(ServerFailed, match="refused SASL user 'streams'"):
        kafka.healthy()


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The storage tool reads "-0JnQ..." as an option: a fresh stack failed in CI on such an id."""
    import uuid

    from streams.stack import kafka as kafka_module

    dashed = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)  # base64 "-AAAA...": the id CI drew began with "-"
    drawn = iter([dashed, uuid.UUID(int=1)])
    monkeypatch.setattr(kafka_module.uuid, "uuid4", lambda: next(drawn))
    assert not kafka_module.new_cluster_id().startswith("-")
