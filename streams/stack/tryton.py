"""Tryton 6.0 (Debian's tryton-server, with the party and sale_opportunity modules) on the stack's
PostgreSQL: set up by its own `trytond-admin` into the database `tryton`, and served by `trytond` on
loopback for its JSON-RPC API.

trytond reads the configuration this module writes under stack_home/tryton (never /etc/tryton), and
keeps its attachments there too: two stack homes are two Trytons."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httpx

from streams.settings import Settings, redact_url
from streams.stack.packages import ensure_application_packages
from streams.stack.postgres import Postgres
from streams.stack.runner import (
    Progress,
    Server,
    chown_tree,
    generated_passwords,
    run,
    service_user,
    write_private,
)

if TYPE_CHECKING:
    from streams.sources.write_applications import TrytonApi

TRYTOND = Path("/usr/bin/trytond")
TRYTOND_ADMIN = Path("/usr/bin/trytond-admin")
DATABASE = "tryton"
DATABASE_USER = "tryton"
ADMIN_USER = "admin"  # Tryton's own administrator, created by trytond-admin --all
COMPANY = "Streams"  # the company opportunities belong to (sale_opportunity requires one)
MODULES = ("party", "sale_opportunity")
# What connectors/tryton.json captures (the tables connectors/tryton.mapping.yaml reads).
CAPTURED_TABLES = ("party_party", "party_contact_mechanism", "sale_opportunity", "ir_note")
PUBLICATION = "streams_tryton"


class Tryton(Server):
    name = "tryton"
    depends_on = ("postgres",)
    start_timeout_s = 120.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.host = "127.0.0.1"
        self.port = settings.tryton_port
        self.config_file = self.home / "trytond.conf"
        self.credentials_file = self.home / "credentials.json"
        self.ready_file = self.home / "database.ready"
        self.company_file = self.home / "company.ready"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def credentials(self) -> dict[str, str]:
        passwords = generated_passwords(self.credentials_file, ("admin_password", "database_password"))
        return {"admin_user": ADMIN_USER, "database_user": DATABASE_USER, **passwords}

    def database_url(self) -> str:
        """Tryton's database for the project's reader (the tickets source's user, granted pg_read_all_data)."""
        return urlsplit(self.settings.dsn("tickets"))._replace(path=f"/{DATABASE}").geturl()

    def prepare(self, progress: Progress) -> None:
        ensure_application_packages(self.settings.stack_apps or (self.name,), progress)
        self.user = service_user()
        for directory in (self.home / "attachments", self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        credentials = self.credentials()
        self._write_config(credentials)
        chown_tree(self.home, self.user)
        # The marker is written after the last setup step; a PostgreSQL cluster made anew since has no `tryton`.
        if not self.ready_file.exists() or not self._database_exists():
            self.company_file.unlink(missing_ok=True)
            self._setup_database(credentials, progress)

    def _write_config(self, credentials: dict[str, str]) -> None:
        postgres = Postgres(self.settings)
        password = quote(credentials["database_password"], safe="")
        lines = [
            "[database]",
            f"uri = postgresql://{DATABASE_USER}:{password}@{postgres.host}:{postgres.port}/",
            f"path = {self.home / 'attachments'}",
            "[web]",
            f"listen = {self.host}:{self.port}",
            "[session]",
            "timeout = 86400",
        ]
        write_private(self.config_file, "\n".join(lines) + "\n")

    def _database_exists(self) -> bool:
        with Postgres(self.settings).superuser() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is not None

    def _setup_database(self, credentials: dict[str, str], progress: Progress) -> None:
        """trytond-admin from an empty database owned by Tryton's user: --all creates Tryton's base and
        its administrator, -u activates party and sale_opportunity with their dependencies. A setup that
        stopped half-way is started over."""
        from psycopg import sql

        progress(f"tryton: trytond-admin into database {DATABASE} (modules {', '.join(MODULES)})")
        postgres = Postgres(self.settings)
        with postgres.superuser() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DATABASE_USER,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(DATABASE_USER)))
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(DATABASE_USER), sql.Literal(credentials["database_password"])
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(DATABASE_USER))
            )
        admin_password = self.home / ".admin-password"
        write_private(admin_password, credentials["admin_password"] + "\n")
        chown_tree(self.home, self.user)
        env = {**os.environ, "TRYTONPASSFILE": str(admin_password)}
        admin = [str(TRYTOND_ADMIN), "-c", str(self.config_file), "-d", DATABASE]
        try:
            run(
                [*admin, "--all", "--email", f"{ADMIN_USER}@streams.local"],
                what="tryton (trytond-admin --all)",
                user=self.user,
                log=self.log_file,
                env=env,
                cwd=self.home,
                timeout=1200,
            )
            run(
                [*admin, "-u", *MODULES, "--activate-dependencies"],
                what="tryton (trytond-admin -u)",
                user=self.user,
                log=self.log_file,
                env=env,
                cwd=self.home,
                timeout=1800,
            )
        finally:
            admin_password.unlink(missing_ok=True)
        reader = urlsplit(self.settings.dsn("tickets")).username or "streams"
        with postgres.superuser() as conn:
            conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(reader)))
        self.ready_file.write_text("trytond-admin --all and -u done\n")
        progress(f"tryton: database {DATABASE} set up, admin {ADMIN_USER!r} (password in {self.credentials_file})")

    def after_healthy(self, progress: Progress) -> None:
        self._prepare_company(progress)
        self._prepare_capture(progress)

    def admin_api(self) -> TrytonApi:
        """Tryton's JSON-RPC API logged in as its administrator (close it, or use it in a `with`)."""
        from streams.sources.write_applications import TrytonApi

        api = TrytonApi(self.url, DATABASE)
        try:
            api.login(ADMIN_USER, self.credentials()["admin_password"])
        except BaseException:
            api.close()
            raise
        return api

    def _prepare_company(self, progress: Progress) -> None:
        """The company every opportunity needs, made through Tryton's API once, and the administrator's."""
        if self.company_file.exists():
            return
        with self.admin_api() as api:
            company = api.ensure_company(COMPANY)
        self.company_file.write_text(f"{company}\n")
        progress(f"tryton: company {COMPANY!r} (id {company})")

    def _prepare_capture(self, progress: Progress) -> None:
        """What the tryton connector (connectors/tryton.json) needs in the application's database."""
        Postgres(self.settings).prepare_capture(DATABASE, CAPTURED_TABLES, PUBLICATION, progress)

    def command(self) -> list[str]:
        # -c puts stack_home in the command line, how pid() knows this stack's server.
        return [str(TRYTOND), "-c", str(self.config_file)]

    def healthy(self) -> bool:
        try:
            answer = httpx.post(
                f"{self.url}/", json={"id": 0, "method": "common.server.version", "params": []}, timeout=5
            )
            version = answer.json()["result"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        return answer.status_code == 200 and str(version).startswith("6.")

    def endpoint(self) -> str:
        return self.url

    def application(self) -> dict[str, str]:
        return {
            "url": self.url,
            "jsonrpc": f"{self.url}/{DATABASE}/",
            "database": redact_url(self.database_url()),
            "credentials": str(self.credentials_file),
        }
