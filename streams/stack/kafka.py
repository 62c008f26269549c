"""Kafka 4.1: one combined KRaft broker + controller on loopback.

With `STREAMS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT` or `SASL_SSL` (and a SCRAM mechanism, user and
password) the broker has no unauthenticated port: clients and the broker itself (inter-broker) authenticate with
SCRAM on the client listener, whose users are created when the storage is formatted (SCRAM credentials
live in the KRaft metadata log); the controller listener takes SASL/PLAIN from the broker only, because
KRaft controllers cannot authenticate with SCRAM. The broker's own passwords are generated once and
kept, readable by the owner alone, in `<stack_home>/kafka/internal-credentials.json`. With `SASL_SSL`
the client listener also speaks TLS only, with a certificate from a CA made once under
`<stack_home>/kafka/certs/` (certificates.py): clients trust `ca.crt` through `STREAMS_KAFKA_SSL_CAFILE`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from streams.settings import Settings, jaas_login, jaas_quote
from streams.stack import certificates, downloads
from streams.stack.java import java_command
from streams.stack.runner import Progress, Server, ServerFailed, StackError, port_open, run, write_private

BROKER_USER = "streams-broker"  # inter-broker SCRAM user (the node talks to itself)
CONTROLLER_USER = "streams-controller"  # SASL/PLAIN on the controller listener
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
STACK_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
AUTH_GRACE_S = 15.0


def properties_text(entries: Mapping[str, str]) -> str:
    """A Java .properties file: values escaped as java.util.Properties reads them (JAAS lines hold
    backslashes and quotes)."""

    def escape(value: str) -> str:
        value = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return "\\" + value if value.startswith(" ") else value

    return "".join(f"{key}={escape(value)}\n" for key, value in entries.items())


def sasl_enabled(settings: Settings) -> bool:
    """Whether the local stack runs Kafka with SASL (what STREAMS_KAFKA_SECURITY_PROTOCOL asks for)."""
    if settings.kafka_security_protocol not in STACK_PROTOCOLS:
        raise StackError(
            f"the local stack cannot serve STREAMS_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}: use"
            " PLAINTEXT, SASL_PLAINTEXT or SASL_SSL (TLS without SASL needs a broker you provide)"
        )
    if settings.kafka_security_protocol == "PLAINTEXT":
        return False
    if not settings.kafka_sasl_mechanism.startswith("SCRAM-"):
        raise StackError(
            f"the local stack creates SCRAM users; STREAMS_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism}"
            " is not served by it: use SCRAM-SHA-512 or SCRAM-SHA-256"
        )
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise StackError(
            f"STREAMS_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs STREAMS_KAFKA_SASL_USERNAME"
            " and STREAMS_KAFKA_SASL_PASSWORD: the local stack creates that SCRAM user"
        )
    if settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_ssl_cafile is None:
        raise StackError(
            "STREAMS_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs STREAMS_KAFKA_SSL_CAFILE: the local stack makes its CA"
            f" at {certificates_dir(settings) / 'ca.crt'} (its clients must trust it)"
        )
    if settings.kafka_sasl_username in (BROKER_USER, CONTROLLER_USER):
        raise StackError(f"STREAMS_KAFKA_SASL_USERNAME={settings.kafka_sasl_username} is the broker's own user")
    return True


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, never starting with "-" (as Kafka's own
    `random-uuid` ensures): the storage tool would read such an id as an option and refuse to format,
    which once failed a fresh stack in CI (one id in 64 starts with "-")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def certificates_dir(settings: Settings) -> Path:
    return settings.stack_home / "kafka" / "certs"


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Kafka(Server):
    name = "kafka"
    node_id = 1
    start_timeout_s = 90.0
    _refused_since: float | None = None  # when the health check's login was first refused

    def libs(self, progress: Progress) -> None:
        self._libs = downloads.kafka_libs(self.settings, progress)

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def internal_credentials_file(self) -> Path:
        return self.home / "internal-credentials.json"

    @property
    def storage_security_file(self) -> Path:
        return self.home / "storage-security.json"

    def internal_credentials(self) -> dict[str, str]:
        """The broker's inter-broker (SCRAM) and controller (PLAIN) passwords: generated once, then kept,
        because the SCRAM one is stored in the formatted metadata log."""
        try:
            credentials = json.loads(self.internal_credentials_file.read_text())
            if isinstance(credentials, dict) and {"broker", "controller"} <= set(credentials):
                return {name: str(credentials[name]) for name in ("broker", "controller")}
        except (OSError, ValueError):
            pass
        credentials = {"broker": secrets.token_urlsafe(24), "controller": secrets.token_urlsafe(24)}
        write_private(self.internal_credentials_file, json.dumps(credentials))
        return credentials

    def scram_users(self) -> dict[str, str]:
        """SCRAM user -> password, created at storage format: the project's client user and the broker's."""
        settings = self.settings
        assert settings.kafka_sasl_username and settings.kafka_sasl_password is not None  # sasl_enabled() checked
        return {
            settings.kafka_sasl_username: settings.kafka_sasl_password.get_secret_value(),
            BROKER_USER: self.internal_credentials()["broker"],
        }

    def storage_security(self) -> dict[str, object]:
        """What the storage must have been formatted with for these settings: the mechanism and, per SCRAM
        user, a digest of the password (never the password), so a changed setting is caught before start."""
        if not sasl_enabled(self.settings):
            return {"protocol": "PLAINTEXT"}
        return {  # the SCRAM users the storage holds; TLS (SASL_SSL) is the listener's, free to change
            "protocol": "SASL_PLAINTEXT",
            "mechanism": self.settings.kafka_sasl_mechanism,
            "users": {
                user: hashlib.sha256(f"{user}:{password}".encode()).hexdigest()
                for user, password in sorted(self.scram_users().items())
            },
        }

    def listener_properties(self) -> dict[str, str]:
        host, port = host_port(self.settings.kafka_bootstrap)
        controller = f"{host}:{self.settings.kafka_controller_port}"
        if not sasl_enabled(self.settings):
            return {
                "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
                "advertised.listeners": f"PLAINTEXT://{host}:{port}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        mechanism = self.settings.kafka_sasl_mechanism
        internal = self.internal_credentials()
        listener = self.settings.kafka_security_protocol  # SASL_PLAINTEXT or SASL_SSL: the listener's name too
        name = listener.lower()
        return {
            "listeners": f"{listener}://{host}:{port},CONTROLLER://{controller}",
            "advertised.listeners": f"{listener}://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            # The controller listener stays SASL without TLS: loopback, and the broker is its only client.
            "listener.security.protocol.map": f"{listener}:{listener},CONTROLLER:SASL_PLAINTEXT",
            f"listener.name.{name}.sasl.enabled.mechanisms": mechanism,
            "sasl.mechanism.inter.broker.protocol": mechanism,
            f"listener.name.{name}.{mechanism.lower()}.sasl.jaas.config": jaas_login(
                SCRAM_MODULE, BROKER_USER, internal["broker"]
            ),
            **self.tls_properties(),
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            # The broker logs in as CONTROLLER_USER; the controller accepts exactly that user.
            "listener.name.controller.plain.sasl.jaas.config": jaas_login(
                PLAIN_MODULE, CONTROLLER_USER, internal["controller"]
            ).removesuffix(";")
            + f" user_{CONTROLLER_USER}={jaas_quote(internal['controller'])};",
        }

    def tls_properties(self) -> dict[str, str]:
        """The SASL_SSL listener's key store (key and chain in one PEM file) and the trust store the broker
        uses as a client of itself; nothing without TLS."""
        if self.settings.kafka_security_protocol != "SASL_SSL":
            return {}
        host, _ = host_port(self.settings.kafka_bootstrap)
        made = certificates.ensure(certificates_dir(self.settings), host)
        return {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(made.key_and_chain),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(made.ca),
        }

    def quorum_properties(self) -> dict[str, str]:
        """How the node finds its controller quorum: the stack's one node is a quorum of itself."""
        host, _ = host_port(self.settings.kafka_bootstrap)
        return {"controller.quorum.bootstrap.servers": f"{host}:{self.settings.kafka_controller_port}"}

    def format_options(self) -> list[str]:
        """The storage format's quorum option: --standalone makes this node the quorum's only voter."""
        return ["--standalone"]

    def replication_properties(self) -> dict[str, str]:
        """The replication of the broker's own topics (group offsets, transactions) and of a topic created
        without one: one replica on the stack's one broker."""
        return {
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }

    def server_properties(self) -> str:
        return properties_text(
            {
                "process.roles": "broker,controller",
                "node.id": str(self.node_id),
                **self.quorum_properties(),
                **self.listener_properties(),
                **self.replication_properties(),
            }
        ) + "\n".join(
            [
                f"log.dirs={self.data_dir}",
                f"num.partitions={self.settings.topic_partitions}",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.num.partitions=4",
                "auto.create.topics.enable=true",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                # A row image over 1 MB (a 10 MB ticket body) must reach the worker, whose size guard
                # dead-letters it (STREAMS_MAX_EVENT_BYTES): at Kafka's 1 MB default it would fail the
                # Debezium task instead and stall the whole source. See producer.override in connectors/.
                "message.max.bytes=16777216",
                "",
            ]
        )

    def prepare(self, progress: Progress) -> None:
        self.libs(progress)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.config_file, self.server_properties())
        wanted = self.storage_security()
        if (self.data_dir / "meta.properties").exists():
            self.check_storage_security(wanted)
            return
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.exists() or cluster_id_file.read_text().startswith("-"):
            cluster_id_file.write_text(new_cluster_id())  # not formatted yet: a bad id may still be replaced
        scram: list[str] = []
        if wanted["protocol"] == "SASL_PLAINTEXT":
            mechanism = self.settings.kafka_sasl_mechanism
            for user, password in self.scram_users().items():
                scram += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        progress(f"{self.name}: formatting KRaft storage ({wanted['protocol']})")
        command = java_command(
            self._libs,
            "kafka.tools.StorageTool",
            "format",
            *self.format_options(),
            "-t",
            cluster_id_file.read_text().strip(),
            "-c",
            str(self.config_file),
            *scram,
            heap="256m",
        )
        # The command line holds the SCRAM passwords: neither the log nor an error may show it.
        shown = [part if not part.startswith("SCRAM-") else "SCRAM-...=[...]" for part in command]
        try:
            run(command, what=f"{self.name} (storage format)", log=None)
        except ServerFailed as exc:
            raise ServerFailed(f"{self.name} (storage format)", f"{' '.join(shown)} failed", exc.log_tail) from None
        write_private(self.storage_security_file, json.dumps(wanted))

    def check_storage_security(self, wanted: dict[str, object]) -> None:
        try:
            formatted = json.loads(self.storage_security_file.read_text())
        except (OSError, ValueError):
            formatted = {"protocol": "PLAINTEXT"}  # storage formatted before the stack knew SASL
        if formatted == wanted:
            return

        def describe(security: dict[str, object]) -> str:
            if security.get("protocol") != "SASL_PLAINTEXT":
                return "PLAINTEXT (no SCRAM users)"
            users = security.get("users")
            names = sorted(users) if isinstance(users, dict) else users
            return f"SASL_PLAINTEXT with {security.get('mechanism')} users {names}"

        raise StackError(
            f"kafka: the storage in {self.data_dir} was formatted for {describe(formatted)}, but the settings ask"
            f" for {describe(wanted)} (or another password). SCRAM users are created when the storage is"
            " formatted: use another STREAMS_STACK_HOME, or go back to the settings it was made with"
            f" (removing {self.data_dir} loses its topics)."
        )

    def command(self) -> list[str]:
        return java_command(self._libs, "kafka.Kafka", str(self.config_file))

    def healthy(self) -> bool:
        host, port = host_port(self.settings.kafka_bootstrap)
        if not port_open(host, port):
            return False
        from streams.clients import CredentialsRefused, kafka_admin

        try:
            metadata = kafka_admin(self.settings).list_topics(timeout=2)
        except CredentialsRefused as exc:  # a refused login or a TLS handshake that fails
            # A broker that has just opened its port may not have loaded its SCRAM users yet; a refusal
            # that lasts is the wrong password (or storage formatted for another user).
            self._refused_since = self._refused_since or time.monotonic()
            if time.monotonic() - self._refused_since > AUTH_GRACE_S:
                raise ServerFailed(self.name, str(exc)) from exc
            return False
        except Exception:  # KafkaException while the broker is still electing its controller
            return False
        return bool(metadata.brokers)

    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap
