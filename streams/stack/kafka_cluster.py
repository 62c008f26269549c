"""A Kafka cluster of several KRaft nodes on loopback, from the local stack's Kafka: what a production
cluster's broker failures are tried against (tests/integration/test_kafka_cluster.py).

Every node is broker and controller, and a voter of one static quorum (`controller.quorum.voters`
names them all), so that the cluster keeps its controller and its metadata while a majority of the
nodes runs. PLAINTEXT only: the cluster is about replication and failover; the stack's own broker is
where SASL and TLS are tried. The broker's defaults follow the replication settings, so that the topics
created without a replication factor (group offsets, transactions, auto-created topics, Debezium's
schema history) are replicated as the project's own: STREAMS_TOPIC_REPLICATION_FACTOR replicas, and
STREAMS_TOPIC_MIN_INSYNC_REPLICAS in sync for a write with acks=all to succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streams.polling import poll
from streams.settings import Settings
from streams.stack.kafka import Kafka, new_cluster_id
from streams.stack.runner import Progress, ServerFailed, StackError


class KafkaNode(Kafka):
    """One node of a KafkaCluster: its own ports and data under <cluster home>/kafka-<node id>."""

    def __init__(self, settings: Settings, node_id: int, voters: str) -> None:
        self.name = f"kafka-{node_id}"
        self.node_id = node_id
        self.voters = voters
        super().__init__(settings)

    def quorum_properties(self) -> dict[str, str]:
        return {"controller.quorum.voters": self.voters}

    def format_options(self) -> list[str]:
        return []  # the voters are in the configuration: a static quorum needs no format option

    def replication_properties(self) -> dict[str, str]:
        replicas = str(self.settings.topic_replication_factor)
        in_sync = str(self.settings.topic_min_insync_replicas or 1)
        return {
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
        }


class KafkaCluster:
    """`len(ports)` nodes, node i (from 1) on the broker and controller ports `ports[i - 1]`, with data
    and logs under `home`. `settings` gives the replication (and the download cache); its Kafka
    address and security are not used."""

    def __init__(self, settings: Settings, home: Path, ports: Sequence[tuple[int, int]], host: str = "127.0.0.1"):
        if settings.topic_replication_factor > len(ports):
            raise StackError(
                f"STREAMS_TOPIC_REPLICATION_FACTOR={settings.topic_replication_factor} needs as many brokers;"
                f" this cluster has {len(ports)}"
            )
        self.home = home
        voters = ",".join(f"{node_id}@{host}:{controller}" for node_id, (_, controller) in enumerate(ports, start=1))
        self.nodes = {
            node_id: KafkaNode(
                settings.model_copy(
                    update={
                        "stack_home": home,
                        "kafka_bootstrap": f"{host}:{broker}",
                        "kafka_controller_port": controller,
                        "kafka_security_protocol": "PLAINTEXT",
                    }
                ),
                node_id,
                voters,
            )
            for node_id, (broker, controller) in enumerate(ports, start=1)
        }

    @property
    def bootstrap(self) -> str:
        """Every node's broker address: STREAMS_KAFKA_BOOTSTRAP for the cluster's clients."""
        return ",".join(node.endpoint() for node in self.nodes.values())

    def up(self, progress: Progress, timeout_s: float = 120.0) -> None:
        """Format (once) and start every node that is not running, and wait until the cluster's metadata
        names every broker. The nodes start together: none elects a controller before a majority runs."""
        cluster_id = self.home / "cluster.id"
        if not cluster_id.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            cluster_id.write_text(new_cluster_id())
        for node in self.nodes.values():
            node.home.mkdir(parents=True, exist_ok=True)
            (node.home / "cluster.id").write_text(cluster_id.read_text())  # one cluster: one id on every node
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(progress), self.nodes.values()))
            list(pool.map(lambda node: node.wait_healthy(progress, timeout_s), self.nodes.values()))
        if not poll(lambda: self.brokers() == set(self.nodes), timeout_s, 0.5):
            raise ServerFailed(
                "kafka cluster", f"the metadata names brokers {sorted(self.brokers())}, not all of {sorted(self.nodes)}"
            )
        progress(f"kafka cluster: {len(self.nodes)} brokers at {self.bootstrap}")

    def down(self, progress: Progress) -> None:
        """Stop every node (SIGTERM, then SIGKILL after the node's stop timeout), in parallel."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda node: node.stop(progress), self.nodes.values()))

    def kill(self, node_id: int, progress: Progress) -> int | None:
        """kill -9 one node (broker and controller both), as a crash would."""
        return self.nodes[node_id].kill(progress)

    def running(self) -> set[int]:
        return {node_id for node_id, node in self.nodes.items() if node.running()}

    def brokers(self) -> set[int]:
        """The broker ids the cluster's metadata names now, asked of a running node; empty when none
        answers."""
        from streams.clients import kafka_admin

        for node_id in sorted(self.running()):
            try:
                metadata = kafka_admin(self.nodes[node_id].settings).list_topics(timeout=5)
            except Exception:  # KafkaException while the node is starting or the quorum elects a leader
                continue
            return set(metadata.brokers)
        return set()
