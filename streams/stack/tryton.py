"""Tryton 6.0 (Debian's tryton-server, with the party and sale_opportunity modules) on the stack's
PostgreSQL: set up by its own `trytond-admin` into the database `tryton`, and served by `trytond` on
loopback for its JSON-RPC API.

trytond reads the configuration this module writes under stack_home/tryton (never /etc/tryton), and
keeps its attachments there too: two stack homes are two Trytons."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from streams.settings import Settings
from streams.stack.application_server import PostgresApplication
from streams.stack.postgres import Postgres
from streams.stack.runner import Progress, write_private

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
# The records, and who may read them (model access: ir_model, ir_model_access, res_group).
CAPTURED_TABLES = (
    "party_party",
    "party_contact_mechanism",
    "sale_opportunity",
    "ir_note",
    "ir_model",
    "ir_model_access",
    "res_group",
)
PUBLICATION = "streams_tryton"


class Tryton(PostgresApplication):
    name = "tryton"
    start_timeout_s = 120.0
    database = DATABASE
    database_user = DATABASE_USER
    admin_user = ADMIN_USER
    captured_tables = CAPTURED_TABLES
    publication = PUBLICATION
    version_path = ("result",)
    version_prefix = "6."

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.tryton_port)
        self.config_file = self.home / "trytond.conf"
        self.company_file = self.home / "company.ready"

    def _directories(self) -> tuple[Path, ...]:
        return (self.home / "attachments",)

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

    def _set_up(self, credentials: dict[str, str], progress: Progress) -> None:
        """trytond-admin from an empty database owned by Tryton's user: --all creates Tryton's base and
        its administrator, -u activates party and sale_opportunity with their dependencies."""
        from psycopg import sql

        self.company_file.unlink(missing_ok=True)  # the new database has no company yet
        progress(f"tryton: trytond-admin into database {DATABASE} (modules {', '.join(MODULES)})")
        with Postgres(self.settings).superuser() as conn:
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
        env = {**os.environ, "TRYTONPASSFILE": str(admin_password)}
        admin = [str(TRYTOND_ADMIN), "-c", str(self.config_file), "-d", DATABASE]
        with self._private_files({admin_password: credentials["admin_password"] + "\n"}):
            self._run_setup(
                [*admin, "--all", "--email", f"{ADMIN_USER}@streams.local"], "trytond-admin --all", env, timeout=1200
            )
            self._run_setup([*admin, "-u", *MODULES, "--activate-dependencies"], "trytond-admin -u", env, timeout=1800)
        self._finish_setup("trytond-admin --all and -u done")
        progress(f"tryton: database {DATABASE} set up, admin {ADMIN_USER!r} (password in {self.credentials_file})")

    def after_healthy(self, progress: Progress) -> None:
        self._prepare_company(progress)
        super().after_healthy(progress)

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

    def command(self) -> list[str]:
        # -c puts stack_home in the command line, how pid() knows this stack's server.
        return [str(TRYTOND), "-c", str(self.config_file)]

    def _version_request(self) -> httpx.Response:
        return httpx.post(f"{self.url}/", json={"id": 0, "method": "common.server.version", "params": []}, timeout=5)

    def _api_urls(self) -> dict[str, str]:
        return {"jsonrpc": f"{self.url}/{DATABASE}/"}
