"""Static group membership: a restarted worker is the same member; two workers on one host are not."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from streams.agents.router_consumer import router_member
from streams.app import create_app
from streams.settings import Settings, configured_mappings
from tests import kb_source


def test_the_instance_id_is_stable_and_distinct_per_worker_on_a_host() -> None:
    first = Settings(worker_web_port=16066).group_instance_id()
    assert first is not None
    assert first == Settings(worker_web_port=16066).group_instance_id()
    assert first != Settings(worker_web_port=16067).group_instance_id()
    assert first.startswith("streams-worker@")
    assert Settings(worker_instance_id="indexer-a").group_instance_id() == "indexer-a"


def test_the_app_joins_as_a_static_member_with_a_short_session() -> None:
    app = create_app(Settings())
    assert app.conf.consumer_group_instance_id == create_app(Settings()).conf.consumer_group_instance_id
    assert app.conf.consumer_group_instance_id.startswith(f"{Settings().group_instance_id()}-")
    assert app.conf.broker_session_timeout == Settings().worker_session_timeout_s
    assert app.conf.broker_heartbeat_interval * 3 <= app.conf.broker_session_timeout


def test_static_membership_can_be_switched_off() -> None:
    assert Settings(worker_static_membership=False, worker_instance_id="indexer-a").group_instance_id() is None


def test_a_worker_restarted_with_another_source_joins_as_another_member(tmp_path: Path) -> None:
    # The group coordinator hands a static member that rejoins its stored assignment, so a worker
    # restarted under the old id with a source added would never be assigned the new source's topics.
    shipped = Settings(worker_instance_id="indexer-a")
    with_kb = shipped.model_copy(
        update={
            "connectors_dir": kb_source.write_connectors_folder(tmp_path / "connectors", shipped),
            "source_dsns": {"kb": SecretStr("postgresql://streams:streams@127.0.0.1:15432/kb")},
        }
    )
    # The router reads the sources' topics (agents/router_consumer.py): its member changes.
    before = router_member(shipped, configured_mappings(shipped))
    after = router_member(with_kb, configured_mappings(with_kb))
    assert before is not None and after is not None
    assert before.startswith("indexer-a-") and after.startswith("indexer-a-")
    assert after != before
    assert router_member(shipped, configured_mappings(shipped)) == before
    # The lanes read the project's own topics alone: their member stays.
    assert create_app(with_kb).conf.consumer_group_instance_id == create_app(shipped).conf.consumer_group_instance_id
