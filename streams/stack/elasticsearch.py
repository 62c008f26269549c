"""Elasticsearch 8.19 (the minimal integ-test distribution) as an unprivileged user on loopback."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from streams.stack import downloads, versions
from streams.stack import elasticsearch_security as security
from streams.stack.analysis_plugin import install_plugin
from streams.stack.java import java_home
from streams.stack.runner import Progress, Server, ServerFailed, run, service_user, tail, write_private


class Elasticsearch(Server):
    name = "elasticsearch"
    start_timeout_s = 120.0

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.dist = self.home / f"elasticsearch-{versions.ELASTICSEARCH_VERSION}"
        self.config_dir = self.home / "config"
        if security.security_enabled(self.settings):
            # Security adds its own start-up work (the .security index, built-in roles): measured 100 s to
            # healthy on the shared two-core machine under load, close to the plain limit.
            self.start_timeout_s = 180.0

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
                    *security.yml_lines(self.settings),
                    # A developer laptop's disk is often fuller than the default watermarks allow.
                    "cluster.routing.allocation.disk.threshold_enabled: false",
                    "",
                ]
            )
        )
        for folder in (self.data_dir, self.logs_dir, self.home / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        self.prepare_security(progress)

    def prepare_security(self, progress: Progress) -> None:
        """Users (file realm) and TLS material when the settings ask for security; see elasticsearch_security."""
        # Rewritten at every start from the settings, so a changed password or user takes effect
        # (elasticsearch-users wants the files to exist).
        for name in ("users", "users_roles"):
            write_private(self.config_dir / name, "")
        if not security.security_enabled(self.settings):
            return
        if security.tls_enabled(self.settings):
            ca = security.ensure_certificates(self.settings, self.config_dir)
            progress(f"elasticsearch: TLS on HTTP; clients trust {ca} (STREAMS_ELASTICSEARCH_CA_CERTS)")
        users = security.file_realm_users(self.settings, self.home)
        for user, password in users.items():
            # The tool reads the password from the command line only; neither the log nor an error shows it.
            try:
                tool = str(self.dist / "bin" / "elasticsearch-users")
                run(
                    [tool, "useradd", user, "-p", password, "-r", "superuser"],
                    what="elasticsearch (users)",
                    env=self.environment(),
                )
            except ServerFailed as exc:
                raise ServerFailed(
                    "elasticsearch (users)", f"elasticsearch-users useradd {user} -p *** failed", exc.log_tail
                ) from None
        progress(f"elasticsearch: security on, file-realm users {', '.join(sorted(users))}")

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
            health = security.admin_request(self.settings, self.home, self.config_dir, "GET", "/_cluster/health")
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and self.running():
                # Our own admin refused: the users file was not read (or another server holds the port).
                raise ServerFailed(self.name, "refused the stack's admin user (401)", tail(self.log_file)) from exc
            return False
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return health.get("status") in ("green", "yellow")

    def after_healthy(self, progress: Progress) -> None:
        """The project's clients must get in with the settings' credentials: say so now if they cannot."""
        if not security.security_enabled(self.settings) or self.settings.elasticsearch_api_key is not None:
            return  # an API key is made after the server is up (elasticsearch_security.create_api_key)
        from streams.clients import elasticsearch_client

        try:
            elasticsearch_client(self.settings).options(request_timeout=10).security.authenticate()
        except Exception as exc:
            raise ServerFailed(self.name, f"the settings' credentials do not work: {exc}") from exc

    def endpoint(self) -> str:
        return self.settings.elasticsearch_url
