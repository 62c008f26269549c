"""Kafka 4.1: one combined KRaft broker + controller on loopback."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from streams.stack import downloads
from streams.stack.java import java_command
from streams.stack.runner import Progress, Server, port_open, run


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Kafka(Server):
    name = "kafka"
    start_timeout_s = 90.0

    def libs(self, progress: Progress) -> None:
        self._libs = downloads.kafka_libs(self.settings, progress)

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    def server_properties(self) -> str:
        host, port = host_port(self.settings.kafka_bootstrap)
        controller = f"{host}:{self.settings.kafka_controller_port}"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={controller}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.data_dir}",
                f"num.partitions={self.settings.topic_partitions}",
                "default.replication.factor=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
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
        self.config_file.write_text(self.server_properties())
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())
        progress("kafka: formatting KRaft storage")
        run(
            java_command(
                self._libs,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id_file.read_text().strip(),
                "-c",
                str(self.config_file),
                heap="256m",
            ),
            what="kafka (storage format)",
            log=self.log_file,
        )

    def command(self) -> list[str]:
        return java_command(self._libs, "kafka.Kafka", str(self.config_file))

    def healthy(self) -> bool:
        host, port = host_port(self.settings.kafka_bootstrap)
        if not port_open(host, port):
            return False
        from streams.clients import kafka_admin

        try:
            metadata = kafka_admin(self.settings).list_topics(timeout=2)
        except Exception:  # KafkaException while the broker is still electing its controller
            return False
        return bool(metadata.brokers)

    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap
