"""MediaWiki 1.39 (Debian's package) on the stack's MariaDB: set up by its own installer
(`maintenance/install.php`) into the database `mediawiki`, and served by PHP's built-in server for its
API. Everything it writes lives under stack_home/mediawiki; /etc/mediawiki stays untouched, so two stack
homes are two wikis."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from streams.settings import Settings
from streams.stack.application_server import ApplicationServer
from streams.stack.mariadb import MariaDB
from streams.stack.runner import Progress, ServerFailed, run, service_user, write_private

MEDIAWIKI_DIR = Path("/usr/share/mediawiki")
DATABASE = "mediawiki"
DATABASE_USER = "mediawiki"
ADMIN_USER = "Admin"
SITE_NAME = "Streams"
# PHP's built-in server answers one request at a time unless told to fork workers: several users
# editing at once would queue behind each other.
SERVER_WORKERS = "4"


def _quote_php(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_sql(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MediaWiki(ApplicationServer):
    name = "mediawiki"
    depends_on = ("mariadb",)
    start_timeout_s = 60.0
    database = DATABASE
    database_user = DATABASE_USER
    admin_user = ADMIN_USER
    reader_source = "wiki"  # its user reads every database of the stack's MariaDB
    version_path = ("query", "general", "generator")
    version_prefix = "MediaWiki "

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.mediawiki_port)
        self.config_file = self.home / "LocalSettings.php"
        self.stack_config_file = self.home / "StackSettings.php"
        self.php_ini = self.home / "php.ini"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api.php"

    def _directories(self) -> tuple[Path, ...]:
        return (self.home / "cache", self.home / "images")

    def _is_set_up(self) -> bool:
        # install.php writes LocalSettings.php last: without it, a setup did not finish (or never ran). A
        # MariaDB data directory made anew since has no wiki tables, whatever LocalSettings.php says.
        return self.config_file.exists() and self._tables_exist()

    def after_healthy(self, progress: Progress) -> None:
        self._prepare_capture(progress)

    def _prepare_capture(self, progress: Progress) -> None:
        """What the mediawiki connector (connectors/mediawiki.json) needs in the wiki's database beside
        MediaWiki's own tables: its heartbeat and signal tables, written by the connector's user."""
        reader = urlsplit(self.settings.dsn(self.reader_source)).username or "streams"
        MariaDB(self.settings).client(
            f"CREATE TABLE IF NOT EXISTS `{DATABASE}`.debezium_signal (id VARCHAR(64) NOT NULL PRIMARY KEY,"
            " type VARCHAR(32) NOT NULL, data TEXT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
            f"CREATE TABLE IF NOT EXISTS `{DATABASE}`.streams_heartbeat (id INT UNSIGNED NOT NULL PRIMARY KEY,"
            " beat_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB;\n"
            f"GRANT SELECT, INSERT, UPDATE ON `{DATABASE}`.debezium_signal TO '{reader}'@'%';\n"
            f"GRANT SELECT, INSERT, UPDATE ON `{DATABASE}`.streams_heartbeat TO '{reader}'@'%';\n"
        )
        progress(f"mediawiki: heartbeat and signal tables in {DATABASE} for its connector")

    def _tables_exist(self) -> bool:
        found = MariaDB(self.settings).client(
            "SELECT COUNT(*) FROM information_schema.tables"
            f" WHERE table_schema = '{DATABASE}' AND table_name IN ('page', 'revision', 'slots', 'content', 'text');\n"
        )
        return found.split()[-1:] == ["5"]

    def _set_up(self, credentials: dict[str, str], progress: Progress) -> None:
        progress(f"mediawiki: maintenance/install.php into database {DATABASE}")
        self.config_file.unlink(missing_ok=True)  # install.php refuses to run where one exists
        mariadb = MariaDB(self.settings)
        password = _quote_sql(credentials["database_password"])
        mariadb.client(
            f"DROP DATABASE IF EXISTS `{DATABASE}`;\n"
            f"CREATE DATABASE `{DATABASE}`;\n"
            f"CREATE USER IF NOT EXISTS '{DATABASE_USER}'@'%' IDENTIFIED BY {password};\n"
            f"ALTER USER '{DATABASE_USER}'@'%' IDENTIFIED BY {password};\n"
            f"GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO '{DATABASE_USER}'@'%';\n"
        )
        database_password = self.home / ".database-password"
        admin_password = self.home / ".admin-password"
        passwords = {database_password: credentials["database_password"], admin_password: credentials["admin_password"]}
        with self._private_files(passwords):
            self._run_setup(
                [
                    "php",
                    str(MEDIAWIKI_DIR / "maintenance" / "install.php"),
                    "--dbtype=mysql",
                    f"--dbserver={mariadb.host}:{mariadb.port}",
                    f"--dbname={DATABASE}",
                    f"--dbuser={DATABASE_USER}",
                    f"--dbpassfile={database_password}",
                    f"--passfile={admin_password}",
                    f"--server={self.url}",
                    "--scriptpath=",
                    f"--confpath={self.home}",
                    "--lang=en",
                    "--quiet",
                    SITE_NAME,
                    ADMIN_USER,
                ],
                "install.php",
                self.environment(),
                cwd=MEDIAWIKI_DIR,
            )
        self.config_file.chmod(0o600)  # it holds the database password and the secret key
        with self.config_file.open("a") as settings:
            settings.write(
                "\n# The local stack's own settings, written anew at every start.\n"
                "require_once __DIR__ . '/StackSettings.php';\n"
            )
        progress(f"mediawiki: installed, admin {ADMIN_USER!r} (password in {self.credentials_file})")

    def _write_config(self, credentials: dict[str, str]) -> None:
        """What the stack decides, kept apart from install.php's file (LocalSettings.php, which holds the
        passwords) so that a new port takes effect."""
        mariadb = MariaDB(self.settings)
        lines = {
            "$wgServer": self.url,
            "$wgDBserver": f"{mariadb.host}:{mariadb.port}",
            # Debian's PlatformSettings.php points these at /var/cache and /var/log, owned by www-data.
            "$wgCacheDirectory": str(self.home / "cache"),
            "$wgUploadDirectory": str(self.home / "images"),
            "$wgDBerrorLog": str(self.logs_dir / "dberror.log"),
            "$wgDebugLogGroups['exception']": str(self.logs_dir / "exception.log"),
            "$wgDebugLogGroups['error']": str(self.logs_dir / "error.log"),
            "$wgDebugLogGroups['fatal']": str(self.logs_dir / "fatal.log"),
        }
        text = "<?php\n" + "".join(f"{name} = {_quote_php(value)};\n" for name, value in lines.items())
        # `streams seed` saves hundreds of revisions through the API as a handful of accounts: MediaWiki's
        # default limit of 90 edits a minute per user would refuse them.
        text += "$wgGroupPermissions['user']['noratelimit'] = true;\n"
        # Bundled with 1.39 but not loaded by install.php: how a wiki's owner renames an account (an
        # erasure's first step, docs/forgetting.md "When the source owner erases a person").
        text += "wfLoadExtension( 'Renameuser' );\n"
        write_private(self.stack_config_file, text)
        write_private(self.php_ini, f"memory_limit = 512M\nerror_log = {self.logs_dir / 'php-errors.log'}\n")

    def environment(self) -> dict[str, str]:
        return {**os.environ, "MW_CONFIG_FILE": str(self.config_file), "PHP_CLI_SERVER_WORKERS": SERVER_WORKERS}

    def command(self) -> list[str]:
        # -c names the stack's php.ini, which also puts stack_home in the command line, how pid() knows it.
        return ["php", "-c", str(self.php_ini), "-S", f"{self.host}:{self.port}", "-t", str(MEDIAWIKI_DIR)]

    def _version_request(self) -> httpx.Response:
        return httpx.get(self.api_url, params={"action": "query", "meta": "siteinfo", "format": "json"}, timeout=5)

    def _api_urls(self) -> dict[str, str]:
        return {"api": self.api_url}

    def maintenance(self, script: str, *args: str, input: str | None = None) -> str:
        """Run one of MediaWiki's maintenance scripts on this wiki, as the user the server runs as:
        `script` is a core one's name (`edit`), or a path under MediaWiki's directory for an extension's
        (`extensions/Renameuser/maintenance/renameUser`)."""
        if not self.config_file.exists():
            raise ServerFailed(self.name, f"not set up: no {self.config_file} (run `streams stack up`)")
        path = MEDIAWIKI_DIR / (script if "/" in script else f"maintenance/{script}")
        return run(
            ["php", "-c", str(self.php_ini), f"{path}.php", *args],
            what=f"mediawiki ({path.name}.php)",
            user=service_user(),
            cwd=MEDIAWIKI_DIR,
            env=self.environment(),
            input=input,
            timeout=120,
        )

    def create_user(self, name: str, password: str, email: str | None = None, groups: tuple[str, ...] = ()) -> None:
        """Create (or update) a wiki account with maintenance/createAndPromote.php, and give it an e-mail
        address with resetUserEmail.php (createAndPromote sets none)."""
        flags = [f"--custom-groups={','.join(groups)}"] if groups else []
        self.maintenance("createAndPromote", "--force", *flags, name, password)
        if email is not None:
            self.maintenance("resetUserEmail", "--no-reset-password", name, email)

    def edit_page(self, title: str, text: str, user: str, summary: str = "") -> None:
        """Save a page's text as `user` with maintenance/edit.php (no web server needed)."""
        self.maintenance("edit", f"--user={user}", f"--summary={summary}", title, input=text)

    def set_real_name(self, user: str, real_name: str) -> None:
        """Set (or, with "", clear) an account's real name through MediaWiki's own User class, as
        Special:Preferences does: no maintenance script writes it. eval.php carries on after an
        exception, so the line answers a marker only when the save went through."""
        line = (
            f"$u = User::newFromName({_quote_php(user)});"
            f" if (!$u || !$u->getId()) {{ throw new Error('no wiki user ' . {_quote_php(user)}); }}"
            f" $u->setRealName({_quote_php(real_name)}); $u->saveSettings(); return 'real name saved';"
        )
        output = self.maintenance("eval", input=line + "\n")
        if "real name saved" not in output:
            raise ServerFailed(self.name, f"eval.php did not save {user!r}'s real name: {output.strip()}")

    def rename_user(self, old: str, new: str, reason: str = "") -> str:
        """Rename an account with the Renameuser extension's renameUser.php (what Special:RenameUser
        does: `user.user_name`, `actor.actor_name` and the user's log entries), as the Maintenance
        script user; returns the script's message."""
        flags = [f"--reason={reason}"] if reason else []
        return self.maintenance(
            "extensions/Renameuser/maintenance/renameUser", f"--oldname={old}", f"--newname={new}", *flags
        ).strip()
