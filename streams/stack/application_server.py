"""What the source applications of the local stack (MediaWiki, Request Tracker, Tryton) share: a Debian
package served on loopback, set up once by its own installer into a database of the stack's, with its
passwords generated and kept under stack_home/<name>. Each application's module keeps what is its own:
its configuration file, its installer, the request that asks it for its version."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from streams.settings import Settings, redact_url
from streams.stack.packages import ensure_application_packages
from streams.stack.postgres import Postgres
from streams.stack.runner import Progress, Server, chown_tree, generated_passwords, run, service_user, write_private


class ApplicationServer(Server):
    """One application of the local stack, served on loopback at `port`."""

    database: str
    database_user: str
    admin_user: str  # the application's own administrator, made by its installer
    reader_source: str  # the source whose user reads the application's database
    # The key path to the version in the answer to `_version_request`, and how that version starts.
    version_path: tuple[str, ...]
    version_prefix: str

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(settings)
        self.host = "127.0.0.1"
        self.port = port
        self.credentials_file = self.home / "credentials.json"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def credentials(self) -> dict[str, str]:
        passwords = generated_passwords(self.credentials_file, ("admin_password", "database_password"))
        return {"admin_user": self.admin_user, "database_user": self.database_user, **passwords}

    def database_url(self) -> str:
        """The application's database for the project's reader: the reader source's DSN, another database."""
        return urlsplit(self.settings.dsn(self.reader_source))._replace(path=f"/{self.database}").geturl()

    # What each application defines.
    @abstractmethod
    def _directories(self) -> tuple[Path, ...]:
        """The directories under home the application writes to."""

    @abstractmethod
    def _write_config(self, credentials: dict[str, str]) -> None:
        """The configuration the stack decides, written anew at every start (a new port takes effect)."""

    @abstractmethod
    def _is_set_up(self) -> bool:
        """Whether the installer finished, into a database that still exists."""

    @abstractmethod
    def _set_up(self, credentials: dict[str, str], progress: Progress) -> None:
        """Run the application's installer from an empty database (a setup that stopped half-way starts over)."""

    @abstractmethod
    def _version_request(self) -> httpx.Response: ...

    @abstractmethod
    def _api_urls(self) -> dict[str, str]:
        """The application's APIs, by name, for `streams stack status`."""

    def prepare(self, progress: Progress) -> None:
        ensure_application_packages(self.settings.stack_apps or (self.name,), progress)
        self.user = service_user()
        for directory in (*self._directories(), self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        credentials = self.credentials()
        self._write_config(credentials)
        chown_tree(self.home, self.user)
        if not self._is_set_up():
            self._set_up(credentials, progress)

    @contextmanager
    def _private_files(self, texts: Mapping[Path, str]) -> Iterator[None]:
        """Files that hand passwords to an installer (never a command line, which `ps` shows): readable by
        the server's user alone, and gone once the installer is done, whether it succeeded or not."""
        try:
            for path, text in texts.items():
                write_private(path, text)
            chown_tree(self.home, self.user)
            yield
        finally:
            for path in texts:
                path.unlink(missing_ok=True)

    def _run_setup(
        self,
        cmd: Sequence[str],
        step: str,
        env: Mapping[str, str],
        cwd: Path | None = None,
        timeout: float = 600,
    ) -> str:
        """One step of the installer, as the server's user, its output kept in the server's log."""
        return run(
            cmd,
            what=f"{self.name} ({step})",
            user=self.user,
            log=self.log_file,
            env=env,
            cwd=cwd or self.home,
            timeout=timeout,
        )

    def healthy(self) -> bool:
        try:
            answer = self._version_request()
            version: Any = answer.json()
            for key in self.version_path:
                version = version[key]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        return answer.status_code == 200 and str(version).startswith(self.version_prefix)

    def endpoint(self) -> str:
        return self.url

    def application(self) -> dict[str, str]:
        return {
            "url": self.url,
            **self._api_urls(),
            "database": redact_url(self.database_url()),
            "credentials": str(self.credentials_file),
        }


class PostgresApplication(ApplicationServer):
    """An application whose database lives in the stack's PostgreSQL, captured by its connector through a
    publication of `captured_tables`, and read by the tickets source's user (granted pg_read_all_data)."""

    depends_on = ("postgres",)
    reader_source = "tickets"
    captured_tables: tuple[str, ...]
    publication: str

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(settings, port)
        self.ready_file = self.home / "database.ready"

    def _is_set_up(self) -> bool:
        # The marker is written after the last setup step; a PostgreSQL cluster made anew since has no database.
        return self.ready_file.exists() and self._database_exists()

    def _database_exists(self) -> bool:
        with Postgres(self.settings).superuser() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            return found is not None

    def _finish_setup(self, done: str) -> None:
        """The last setup step: the reader may read the new database, and the marker says `done`."""
        from psycopg import sql

        reader = urlsplit(self.settings.dsn(self.reader_source)).username or "streams"
        with Postgres(self.settings).superuser() as conn:
            conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(reader)))
        self.ready_file.write_text(f"{done}\n")

    def after_healthy(self, progress: Progress) -> None:
        """What the application's connector (connectors/<source>.json) needs in its database."""
        Postgres(self.settings).prepare_capture(self.database, self.captured_tables, self.publication, progress)
