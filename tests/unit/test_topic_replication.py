"""Replication of the topics the worker and Debezium create: one setting for both, defaulting to the
local stack's single broker."""

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


def test_every_topic_follows_the_replication_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(stack_home=tmp_path, topic_replication_factor=3, topic_min_insync_replicas=2)
    topics = {topic.topic: topic for topic in created_topics(settings, monkeypatch)}
    assert {topic.replication_factor for topic in topics.values()} == {3}
    assert {topic.config["min.insync.replicas"] for topic in topics.values()} == {"2"}
    # A topic's own configs stay beside the shared one.
    assert topics[settings.ledger_topic].config["cleanup.policy"] == "compact"
    rendered = connectors.load(settings)
    assert set(rendered) == {"tickets", "crm", "wiki"}
    for config in rendered.values():
        assert config["topic.creation.default.replication.factor"] == "3"
        assert config["topic.creation.default.min.insync.replicas"] == "2"
        assert config["topic.creation.default.partitions"] == str(settings.topic_partitions)
    assert app_options(settings, load_mappings(connectors_dir(settings)))["topic_replication_factor"] == 3


def test_impossible_replication_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        Settings(topic_replication_factor=0)
    settings = Settings(stack_home=tmp_path, topic_replication_factor=1, topic_min_insync_replicas=2)
    with pytest.raises(SettingsError, match="no write could succeed"):
        created_topics(settings, monkeypatch)
    with pytest.raises(SettingsError):
        connectors.load(settings)
