"""Elasticsearch 8.19 (the minimal integ-test distribution) as an unprivileged user on loopback."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from streams.stack import downloads, versions
from streams.stack.analysis_plugin import install_plugin
from streams.stack.java import java_home
from streams.stack.runner import Progress, Server, run, service_user


class Elasticsearch(Server):
    name = "elasticsearch"
    start_timeout_s = 120.0

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.dist = self.home / f"elasticsearch-{versions.ELASTICSEARCH_VERSION}"
        self.config_dir = self.home / "config"

    def prepare(self, progress: Progress) -> None:
        self.user = service_user()  # Elasticsearch refuses to run as root
        if not (self.dist / ".complete").exists():
            archive = downloads.elasticsearch_zip(self.settings, progress)
            progress(f"elasticsearch: unpacking {archive.name}")
            shutil.rmtree(self.dist, ignore_errors=True)
            # Unpacked under stack_home, not the cache: the unprivileged user cannot read /root.
            run(["unzip", "-q", "-o", str(archive), "-d", str(self.home)], what="elasticsearch (unzip)")
            (self.dist / ".complete").touch()
        install_plugin(self.dist, self.settings.cache_dir, progress)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for name in ("jvm.options", "log4j2.properties"):
            if not (self.config_dir / name).exists():
                shutil.copy(self.dist / "config" / name, self.config_dir / name)
        (self.config_dir / "jvm.options.d").mkdir(exist_ok=True)
        heap = self.settings.elasticsearch_heap
        (self.config_dir / "jvm.options.d" / "heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
        url = urlsplit(self.settings.elasticsearch_url)
        (self.config_dir / "elasticsearch.yml").write_text(
            "\n".join(
                [
                    "cluster.name: streams-local",
                    "node.name: streams-local-1",
                    f"path.data: {self.data_dir}",
                    f"path.logs: {self.logs_dir}",
                    f"network.host: {url.hostname}",
                    f"http.port: {url.port}",
                    f"transport.port: {self.settings.elasticsearch_transport_port}",
                    "discovery.type: single-node",
                    "xpack.security.enabled: false",
                    # A developer laptop's disk is often fuller than the default watermarks allow.
                    "cluster.routing.allocation.disk.threshold_enabled: false",
                    "",
                ]
            )
        )
        for folder in (self.data_dir, self.logs_dir, self.home / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ES_JAVA_HOME": str(java_home()),
                "ES_PATH_CONF": str(self.config_dir),
                "ES_TMPDIR": str(self.home / "tmp"),
                "HOME": str(self.home),
            }
        )
        env.pop("ES_JAVA_OPTS", None)
        env.pop("JAVA_HOME", None)
        return env

    def command(self) -> list[str]:
        return [str(self.dist / "bin" / "elasticsearch")]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.settings.elasticsearch_url}/_cluster/health", timeout=2) as r:
                return json.load(r).get("status") in ("green", "yellow")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def endpoint(self) -> str:
        return self.settings.elasticsearch_url
