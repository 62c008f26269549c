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

    def prepare_capture(self, database: str, tables: tuple[str, ...], publication: str, progress: Progress) -> None:
        """What a connector needs in an application's database whose tables the application's user owns
        (RT's, Tryton's): the publication, made as the superuser, with full before-images (a delete must
        carry its join columns), and the heartbeat and signal tables, owned by the connector's user."""
        from psycopg import sql

        reader = urlsplit(self.settings.dsn("tickets")).username or "streams"
        with self.superuser(database) as conn:
            for table in ("debezium_signal", "streams_heartbeat"):
                columns = (
                    "id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data TEXT NULL"
                    if table == "debezium_signal"
                    else "id INT PRIMARY KEY, beat_at TIMESTAMPTZ NOT NULL DEFAULT now()"
                )
                conn.execute(sql.SQL(f"CREATE TABLE IF NOT EXISTS {{}} ({columns})").format(sql.Identifier(table)))
                conn.execute(
                    sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(reader))
                )
            for table in tables:
                conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(table)))
            listed = sql.SQL(", ").join(sql.Identifier(t) for t in (*tables, "debezium_signal", "streams_heartbeat"))
            if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(publication), listed))
            else:
                conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(publication), listed))
        progress(f"postgres: publication {publication} and heartbeat table in {database} for its connector")

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
