"""Kafka Connect (distributed mode) with the Debezium PostgreSQL and MariaDB connectors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from streams.settings import Settings
from streams.stack import downloads
from streams.stack.java import java_command
from streams.stack.kafka import properties_text
from streams.stack.runner import Progress, Server, write_private

GROUP_ID = "streams-connect"


def worker_security(settings: Settings) -> dict[str, str]:
    """Kafka security for the Connect worker itself and for the producers, consumers and admin clients it
    makes for connectors, which read only their own prefixed settings (the project's one Kafka user;
    {} for PLAINTEXT)."""
    security = settings.kafka_java_properties()
    prefixes = ("", "producer.", "consumer.", "admin.")
    return {f"{prefix}{key}": value for prefix in prefixes for key, value in security.items()}


class Connect(Server):
    name = "connect"
    depends_on = ("kafka",)
    start_timeout_s = 120.0

    @property
    def config_file(self) -> Path:
        return self.home / "connect-distributed.properties"

    def prepare(self, progress: Progress) -> None:
        self._libs = downloads.kafka_libs(self.settings, progress)
        plugins = downloads.debezium_plugin_path(self.settings, progress)
        self.home.mkdir(parents=True, exist_ok=True)
        # Written readable by the owner alone: with SASL it holds the Kafka password.
        write_private(self.config_file, self.worker_properties(plugins))

    def worker_properties(self, plugins: Path) -> str:
        """connect-distributed.properties. Connect's own topics (connector configs, source offsets,
        statuses) are replicated as every other topic of the project (STREAMS_TOPIC_REPLICATION_FACTOR):
        a broker's loss must not take with it the offsets Debezium resumes from."""
        url = urlsplit(self.settings.connect_url)
        replicas = self.settings.topic_replication_factor
        settings_lines = "\n".join(
            [
                f"bootstrap.servers={self.settings.kafka_bootstrap}",
                f"group.id={GROUP_ID}",
                "key.converter=org.apache.kafka.connect.json.JsonConverter",
                "value.converter=org.apache.kafka.connect.json.JsonConverter",
                "key.converter.schemas.enable=false",
                "value.converter.schemas.enable=false",
                f"config.storage.topic={GROUP_ID}-configs",
                f"offset.storage.topic={GROUP_ID}-offsets",
                f"status.storage.topic={GROUP_ID}-status",
                f"config.storage.replication.factor={replicas}",
                f"offset.storage.replication.factor={replicas}",
                "offset.storage.partitions=5",
                f"status.storage.replication.factor={replicas}",
                "status.storage.partitions=1",
                "offset.flush.interval.ms=1000",
                f"listeners=http://{url.hostname}:{url.port}",
                f"rest.advertised.host.name={url.hostname}",
                f"rest.advertised.port={url.port}",
                f"plugin.path={plugins}",
                "topic.creation.enable=true",
                # A broker restart makes Connect stop every task (its coordinator is gone for > 3 s).
                # A PostgreSQL task cannot finish stopping until the broker is back; abandoned after
                # the default 5 s, it lives on as an orphan that keeps the replication slot and its
                # JMX names, and the new task instance streams nothing. Waiting as long
                # as a broker restart takes lets the old task end for real.
                "task.shutdown.graceful.timeout.ms=90000",
                # Debezium's PostgreSQL task reads the offset topic to its end at every commit (to flush
                # the slot's LSN), through the worker's admin client. When a broker of a cluster dies
                # with that admin's request in flight, the call is only given up after
                # default.api.timeout.ms, and capture stops meanwhile: 60 s by default, once or twice
                # in a row (tests/integration/test_kafka_cluster.py measured the last change
                # searchable 46 to 111 s after the stream's end, 10 s with these). The admin client
                # refuses a request timeout above the API timeout.
                "request.timeout.ms=10000",
                "default.api.timeout.ms=10000",
                "",
            ]
        )
        return properties_text(worker_security(self.settings)) + settings_lines

    def command(self) -> list[str]:
        return java_command(self._libs, "org.apache.kafka.connect.cli.ConnectDistributed", str(self.config_file))

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.settings.connect_url}/connectors", timeout=2) as response:
                json.load(response)
                return response.status == 200
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def endpoint(self) -> str:
        return self.settings.connect_url
