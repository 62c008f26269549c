"""PostgreSQL 15 (Debian's binaries) as a private cluster: logical decoding for Debezium, the
`tickets` and `crm` databases and their schemas."""

from __future__ import annotations

import signal
from importlib import resources
from urllib.parse import urlsplit

from streams.stack.packages import POSTGRES_BIN, ensure_database_packages
from streams.stack.runner import Progress, Server, ServerFailed, run, service_user

SUPERUSER = "postgres"


class Postgres(Server):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: Debezium's replication connections would block "smart"
    start_timeout_s = 60.0

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.socket_dir = self.home / "run"
        dsn = urlsplit(self.settings.dsn("tickets"))
        self.host = dsn.hostname or "127.0.0.1"
        self.port = dsn.port or 5432

    def prepare(self, progress: Progress) -> None:
        ensure_database_packages(progress)
        self.user = service_user()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            progress("postgres: initdb")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            from streams.stack.runner import chown_tree

            chown_tree(self.home, self.user)
            run(
                [
                    str(POSTGRES_BIN / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ],
                what="postgres (initdb)",
                user=self.user,
                log=self.log_file,
            )

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            "shared_buffers": "128MB",
            "fsync": "on",
        }
        args = [str(POSTGRES_BIN / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def superuser(self, dbname: str = "postgres"):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname, connect_timeout=2, autocommit=True
        )

    def healthy(self) -> bool:
        import psycopg

        try:
            with self.superuser() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def after_healthy(self, progress: Progress) -> None:
        import psycopg
        from psycopg import sql

        for source in ("tickets", "crm"):
            url = urlsplit(self.settings.dsn(source))
            user, password, dbname = url.username or "streams", url.password or "", url.path.lstrip("/")
            try:
                with self.superuser() as conn:
                    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is None:
                        conn.execute(
                            sql.SQL("CREATE ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                                sql.Identifier(user), sql.Literal(password)
                            )
                        )
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
                        conn.execute(
                            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(user))
                        )
                schema = resources.files("streams.sources").joinpath(f"{source}.sql").read_text()
                with psycopg.connect(self.settings.dsn(source), connect_timeout=5, autocommit=True) as conn:
                    conn.execute(schema.encode())
            except psycopg.Error as exc:
                raise ServerFailed(self.name, f"setting up database {dbname!r}: {exc}") from exc
        progress("postgres: databases tickets, crm and their schemas are in place")

    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"
