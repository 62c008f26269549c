"""Replication of the topics the worker, Debezium and Kafka Connect create: one setting for all, defaulting
to the local stack's single broker; and the brokers of a KafkaCluster, whose defaults follow it."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import streams.topics
from streams.app import app_options
from streams.pipeline.document_mapping import load_mappings
from streams.resources import connectors_dir
from streams.settings import Settings, SettingsError
from streams.stack import connectors
from streams.stack.connect import Connect
from streams.stack.kafka import Kafka
from streams.stack.kafka_cluster import KafkaCluster
from streams.stack.runner import StackError


class FakeAdmin:
    """Records the topics asked for; knows none beforehand."""

    def __init__(self) -> None:
        self.created: list[Any] = []

    def list_topics(self, timeout: float) -> Any:
        return type("Metadata", (), {"topics": {}})()

    def create_topics(self, topics: list[Any]) -> dict[str, Future[None]]:
        self.created.extend(topics)
        futures: dict[str, Future[None]] = {}
        for topic in topics:
            futures[topic.topic] = Future()
            futures[topic.topic].set_result(None)
        return futures


def created_topics(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    admin = FakeAdmin()
    monkeypatch.setattr(streams.topics, "kafka_admin", lambda _: admin)
    streams.topics.ensure_topics(settings, load_mappings(connectors_dir(settings)))
    return admin.created


def test_the_local_stack_keeps_one_replica(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(stack_home=tmp_path)
    topics = created_topics(settings, monkeypatch)
    assert topics and {topic.replication_factor for topic in topics} == {1}
    assert all("min.insync.replicas" not in topic.config for topic in topics)
    for config in connectors.load(settings).values():
        assert config["topic.creation.default.replication.factor"] == "1"
        assert "topic.creation.default.min.insync.replicas" not in config
    assert {"config", "offset", "status"} == {
        key.split(".")[0] for key, value in connect_properties(settings).items() if key.endswith("replication.factor")
    }
    assert {value for key, value in connect_properties(settings).items() if key.endswith("replication.factor")} == {"1"}
    broker = properties(Kafka(settings).server_properties())
    assert broker["default.replication.factor"] == broker["offsets.topic.replication.factor"] == "1"


def test_every_topic_follows_the_replication_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        stack_home=tmp_path,
        topic_replication_factor=3,
        topic_min_insync_replicas=2,
        stack_apps=("mediawiki", "request-tracker", "tryton"),
    )
    topics = {topic.topic: topic for topic in created_topics(settings, monkeypatch)}
    assert {topic.replication_factor for topic in topics.values()} == {3}
    assert {topic.config["min.insync.replicas"] for topic in topics.values()} == {"2"}
    # A topic's own configs stay beside the shared one.
    assert topics[settings.ledger_topic].config["cleanup.policy"] == "compact"
    rendered = connectors.load(settings)
    # Every connector definition, the real applications' included.
    assert set(rendered) == {"tickets", "crm", "wiki", "mediawiki", "rt", "tryton"}
    for config in rendered.values():
        assert config["topic.creation.default.replication.factor"] == "3"
        assert config["topic.creation.default.min.insync.replicas"] == "2"
        assert config["topic.creation.default.partitions"] == str(settings.topic_partitions)
    assert app_options(settings, load_mappings(connectors_dir(settings)))["topic_replication_factor"] == 3
    # Kafka Connect's own topics: connector configs, source offsets, statuses.
    assert {value for key, value in connect_properties(settings).items() if key.endswith("replication.factor")} == {"3"}


def test_connect_gives_up_a_request_cut_by_a_broker_s_loss_within_seconds(tmp_path: Path) -> None:
    worker = connect_properties(Settings(stack_home=tmp_path))
    # Kafka's admin client refuses to start with a request timeout above its API timeout.
    assert int(worker["request.timeout.ms"]) <= int(worker["default.api.timeout.ms"]) <= 10_000


def test_a_cluster_s_brokers_follow_the_replication_settings(tmp_path: Path) -> None:
    settings = Settings(topic_replication_factor=3, topic_min_insync_replicas=2)
    cluster = KafkaCluster(settings, tmp_path, [(21092, 21093), (21094, 21095), (21096, 21097)])
    assert cluster.bootstrap == "127.0.0.1:21092,127.0.0.1:21094,127.0.0.1:21096"
    voters = "1@127.0.0.1:21093,2@127.0.0.1:21095,3@127.0.0.1:21097"
    for node_id, node in cluster.nodes.items():
        broker = properties(node.server_properties())
        assert broker["node.id"] == str(node_id)
        assert broker["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in broker
        assert (
            broker["listeners"]
            == f"PLAINTEXT://127.0.0.1:{21090 + 2 * node_id},CONTROLLER://127.0.0.1:{21091 + 2 * node_id}"
        )
        assert broker["log.dirs"] == str(tmp_path / f"kafka-{node_id}" / "data")
        for key in ("default.replication.factor", "offsets.topic.replication.factor"):
            assert broker[key] == "3", key
        for key in ("min.insync.replicas", "transaction.state.log.min.isr"):
            assert broker[key] == "2", key
        assert node.format_options() == []  # a static quorum: no --standalone


def test_a_cluster_has_as_many_brokers_as_replicas(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="needs as many brokers"):
        KafkaCluster(Settings(topic_replication_factor=3), tmp_path, [(21092, 21093), (21094, 21095)])


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def connect_properties(settings: Settings) -> dict[str, str]:
    return properties(Connect(settings).worker_properties(Path("/plugins")))


def test_impossible_replication_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        Settings(topic_replication_factor=0)
    settings = Settings(stack_home=tmp_path, topic_replication_factor=1, topic_min_insync_replicas=2)
    with pytest.raises(SettingsError, match="no write could succeed"):
        created_topics(settings, monkeypatch)
    with pytest.raises(SettingsError):
        connectors.load(settings)
