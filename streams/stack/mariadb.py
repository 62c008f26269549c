"""MariaDB (Debian's binaries) with a private datadir: row-based binlog for Debezium, the `wiki`
database, its schema, and a user with the privileges the Debezium MariaDB connector needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from urllib.parse import urlsplit

from streams.stack.packages import ensure_database_packages
from streams.stack.runner import Progress, Server, ServerFailed, chown_tree, run, service_user

# Debezium's MariaDB connector: snapshot (SELECT, RELOAD for FLUSH, LOCK TABLES, SHOW DATABASES) and
# binlog streaming (REPLICATION SLAVE, and BINLOG MONITOR, which REPLICATION CLIENT became in 10.5).
DEBEZIUM_PRIVILEGES = "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR, LOCK TABLES"


def _bin(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin") or name


class MariaDB(Server):
    name = "mariadb"
    start_timeout_s = 60.0

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.socket = self.home / "run" / "mariadb.sock"
        self.config_file = self.home / "my.cnf"
        dsn = urlsplit(self.settings.dsn("wiki"))
        self.host = dsn.hostname or "127.0.0.1"
        self.port = dsn.port or 3306

    def prepare(self, progress: Progress) -> None:
        ensure_database_packages(progress)
        self.user = service_user()
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "\n".join(
                [
                    "[mariadbd]",
                    f"datadir={self.data_dir}",
                    f"socket={self.socket}",
                    f"pid-file={self.home / 'run' / 'mariadbd.pid'}",
                    f"bind-address={self.host}",
                    f"port={self.port}",
                    "skip-name-resolve",
                    "server_id=1",
                    f"log_bin={self.data_dir / 'binlog'}",
                    "binlog_format=ROW",
                    "binlog_row_image=FULL",
                    "binlog_expire_logs_seconds=604800",
                    "character-set-server=utf8mb4",
                    "collation-server=utf8mb4_unicode_ci",
                    "innodb_buffer_pool_size=256M",
                    "",
                ]
            )
        )
        if not (self.data_dir / "mysql").exists():
            progress("mariadb: mariadb-install-db")
            chown_tree(self.home, self.user)
            args = [
                _bin("mariadb-install-db"),
                f"--defaults-file={self.config_file}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ]
            if self.user:
                args.append(f"--user={self.user}")
            run(args, what="mariadb (install-db)", log=self.log_file)

    def command(self) -> list[str]:
        return [_bin("mariadbd"), f"--defaults-file={self.config_file}"]

    def client(self, statements: str) -> str:
        # root@localhost authenticates through unix_socket: the root OS user running this stack.
        return run(
            [_bin("mariadb"), f"--socket={self.socket}", "-u", "root", "--batch"],
            what="mariadb (client)",
            input=statements,
            timeout=30,
        )

    def healthy(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            done = subprocess.run(
                [_bin("mariadb-admin"), f"--socket={self.socket}", "-u", "root", "--connect-timeout=2", "ping"],
                capture_output=True,
                timeout=5,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def after_healthy(self, progress: Progress) -> None:
        import pymysql

        url = urlsplit(self.settings.dsn("wiki"))
        user, password, dbname = url.username or "streams", url.password or "", url.path.lstrip("/")
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        self.client(
            f"CREATE DATABASE IF NOT EXISTS `{dbname}` CHARACTER SET utf8mb4;\n"
            f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{quoted}';\n"
            f"GRANT {DEBEZIUM_PRIVILEGES} ON *.* TO '{user}'@'%';\n"
            f"GRANT ALL PRIVILEGES ON `{dbname}`.* TO '{user}'@'%';\n"
            "FLUSH PRIVILEGES;\n"
        )
        schema = resources.files("streams.sources").joinpath("wiki.sql").read_text()
        statements = [s.strip() for s in re.split(r";\s*(?:\n|$)", schema) if s.strip()]
        try:
            conn = pymysql.connect(
                host=self.host,
                port=self.port,
                user=user,
                password=password,
                database=dbname,
                connect_timeout=5,
                autocommit=True,
            )
            with conn, conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        except pymysql.Error as exc:
            raise ServerFailed(self.name, f"setting up database {dbname!r}: {exc}") from exc
        progress(f"mariadb: database {dbname} and its schema are in place")

    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"
