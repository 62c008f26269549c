"""Request Tracker 5 (Debian's package) on the stack's PostgreSQL: set up by its own
`rt-setup-database` into the database `rt`, and served by `rt-server` on loopback for its REST 2 API.

RT reads the site configuration this module writes under stack_home/request-tracker (RT_SITE_CONFIG and
RT_SITE_CONFIG_DIR), never /etc/request-tracker5, and keeps its caches and outgoing mail (an mbox, not
sent anywhere) there too: two stack homes are two RTs."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from streams.settings import Settings
from streams.stack.application_server import PostgresApplication
from streams.stack.postgres import SUPERUSER, Postgres
from streams.stack.runner import Progress, run, write_private

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
RT_SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
RT_SHREDDER = Path("/usr/sbin/rt-shredder-5")
DATABASE = "rt"
DATABASE_USER = "rt_user"
ADMIN_USER = "root"  # RT's own superuser, created by rt-setup-database
QUEUE = "General"
# Rights of every privileged (staff) user on the queue, so that staff accounts created through the API
# can take, answer and comment tickets as themselves.
STAFF_RIGHTS = (
    "SeeQueue",
    "ShowTicket",
    "ShowTicketComments",
    "CreateTicket",
    "ReplyToTicket",
    "CommentOnTicket",
    "OwnTicket",
    "ModifyTicket",
    "Watch",
)
# Where RT keeps what it writes (Debian's RT::Generated points at /var, owned by www-data).
RT_DIRECTORIES = {"VarPath": "var", "MasonDataDir": "mason_data", "MasonSessionDir": "session_data"}
# What connectors/rt.json captures (the tables connectors/rt.mapping.yaml reads), through this publication.
CAPTURED_TABLES = ("tickets", "queues", "transactions", "attachments", "groups", "groupmembers", "users", "acl")
PUBLICATION = "streams_rt"
# Starlet forks this many workers (its default is 10, each a full RT process).
WORKERS = "2"
# Grant or revoke a group's right through RT's own API (RT::Principal's GrantRight and RevokeRight, what
# RT's rights pages call): RT 5's REST 2 has no rights endpoints. Arguments: grant|revoke, the group (a
# UserDefined one's name, or SystemInternal's Everyone, Privileged, Unprivileged), the right, the queue
# (empty: the whole system).
SET_RIGHT = r"""
use strict; use warnings; use RT; RT::LoadConfig(); RT::Init();
my ($action, $name, $right, $queue) = @ARGV;
my $group = RT::Group->new(RT->SystemUser);
$group->LoadUserDefinedGroup($name) or $group->LoadSystemInternalGroup($name) or die "no RT group $name\n";
my $object = RT->System;
if (length $queue) { $object = RT::Queue->new(RT->SystemUser); $object->Load($queue) or die "no RT queue $queue\n" }
my $method = $action eq "grant" ? "GrantRight" : "RevokeRight";
my ($ok, $message) = $group->PrincipalObj->$method(Right => $right, Object => $object);
die "$message\n" unless $ok;
print "$message\n";
"""


def _quote_perl(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RequestTracker(PostgresApplication):
    name = "request-tracker"
    start_timeout_s = 120.0
    database = DATABASE
    database_user = DATABASE_USER
    admin_user = ADMIN_USER
    captured_tables = CAPTURED_TABLES
    publication = PUBLICATION
    version_path = ("Version",)
    version_prefix = "5."

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.request_tracker_port)
        self.site_config = self.home / "RT_SiteConfig.pm"
        self.site_config_dir = self.home / "RT_SiteConfig.d"
        self.initial_data = self.home / "initialdata"

    @property
    def rest2_url(self) -> str:
        return f"{self.url}/REST/2.0"

    def _directories(self) -> tuple[Path, ...]:
        return (self.site_config_dir, *(self.home / name for name in RT_DIRECTORIES.values()))

    def _write_config(self, credentials: dict[str, str]) -> None:
        postgres = Postgres(self.settings)
        options: dict[str, str | int] = {
            "rtname": "streams",
            "Organization": "streams.local",
            "CorrespondAddress": "rt@streams.local",
            "CommentAddress": "rt-comment@streams.local",
            "WebDomain": self.host,
            "WebPort": self.port,
            "WebPath": "",
            "WebBaseURL": self.url,
            "DatabaseType": "Pg",
            "DatabaseHost": postgres.host,
            "DatabasePort": postgres.port,
            "DatabaseName": DATABASE,
            "DatabaseUser": DATABASE_USER,
            "DatabasePassword": credentials["database_password"],
            "DatabaseAdmin": SUPERUSER,
            "Timezone": "UTC",
            # Mail goes to an mbox under var/ (a record of what RT would have sent), never out.
            "MailCommand": "mbox",
            "LogToSTDERR": "warning",
        }
        lines = [f"Set(${name}, {_quote_perl(value)});" for name, value in options.items()]
        lines += ["Set($LogToSyslog, undef);", "Set($LogToFile, undef);"]
        # The site config runs in package RT, so these override RT::Generated's paths.
        for variable, directory in RT_DIRECTORIES.items():
            lines.append(f"$RT::{variable} = {_quote_perl(str(self.home / directory))};")
        write_private(self.site_config, "\n".join(lines) + "\n1;\n")

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "RT_SITE_CONFIG": str(self.site_config),
            "RT_SITE_CONFIG_DIR": str(self.site_config_dir),
        }

    def _set_up(self, credentials: dict[str, str], progress: Progress) -> None:
        """rt-setup-database as PostgreSQL's superuser over the cluster's Unix socket (trust, no password),
        from an empty database."""
        from psycopg import sql

        progress(f"request-tracker: rt-setup-database into database {DATABASE}")
        postgres = Postgres(self.settings)
        with postgres.superuser() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(DATABASE_USER)))
        grantee = "GroupDomain => 'SystemInternal', GroupType => 'Privileged'"
        rights = "\n".join(f"    {{ {grantee}, Queue => '{QUEUE}', Right => '{right}' }}," for right in STAFF_RIGHTS)
        self.initial_data.write_text(f"@ACL = (\n{rights}\n);\n1;\n")
        env = {**self.environment(), "RT_DB_HOST": str(postgres.socket_dir)}
        setup = [str(RT_SETUP_DATABASE), f"--dba={SUPERUSER}", "--force"]
        root_password = self.home / ".root-password"
        with self._private_files({root_password: credentials["admin_password"] + "\n"}):
            self._run_setup(
                [*setup, "--action=init", f"--root-password-file={root_password}"], "rt-setup-database init", env
            )
            self._run_setup(
                [*setup, "--action=insert", f"--datafile={self.initial_data}"], "rt-setup-database insert", env
            )
        self._finish_setup("rt-setup-database init and insert done")
        progress(
            f"request-tracker: database {DATABASE} set up, admin {ADMIN_USER!r} (password in {self.credentials_file})"
        )

    def set_right(self, group: str, right: str, queue: str | None = None, granted: bool = True) -> str:
        """Grant (or revoke) `group` the RT right `right` on `queue`, or on the whole system without one,
        as RT's administrators do; returns RT's message."""
        action = "grant" if granted else "revoke"
        command = ["perl", f"-I{RT_LIB}", "-e", SET_RIGHT, action, group, right, queue or ""]
        return self._tool(command, f"{action} {right} for {group}", timeout=60)

    def shred(self, plugin: str, sqldump: Path) -> str:
        """Wipe what RT's shredder plugin `plugin` selects (`Tickets=query,id = 7`,
        `Users=name,ann;status,any;replace_relations,Nobody`) with rt-shredder --force, on this RT's site
        config, as a source owner erases from RT; `sqldump` receives the SQL that would restore it.
        Returns rt-shredder's output."""
        command = [str(RT_SHREDDER), "--force", "--sqldump", str(sqldump), "--plugin", plugin]  # --plugin last
        return self._tool(command, f"rt-shredder {plugin}", timeout=300)

    def _tool(self, command: list[str], what: str, timeout: float) -> str:
        """One of RT's own tools on this RT's site config, as the user RT runs as; its output."""
        return run(
            command,
            what=f"request-tracker ({what})",
            user=self.user,
            env=self.environment(),
            cwd=self.home,
            timeout=timeout,
        ).strip()

    def command(self) -> list[str]:
        # --access-log also puts stack_home in the command line, how pid() knows this stack's server.
        return [
            str(RT_SERVER),
            "--server=Starlet",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--max-workers={WORKERS}",
            f"--access-log={self.logs_dir / 'access.log'}",
        ]

    def healthy(self) -> bool:
        # The version is behind a login, with the password `prepare` generates.
        return self.credentials_file.exists() and super().healthy()

    def _version_request(self) -> httpx.Response:
        return httpx.get(f"{self.rest2_url}/rt", auth=(ADMIN_USER, self.credentials()["admin_password"]), timeout=5)

    def _api_urls(self) -> dict[str, str]:
        return {"rest2": self.rest2_url}
