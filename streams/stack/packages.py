"""Debian packages the local stack needs: installed on first use, without starting the system's
own services (we run private servers; the system ones would only take ports and memory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from streams.stack import versions
from streams.stack.runner import Progress, StackError, run

POSTGRES_BIN = Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin")
POLICY_RC = Path("/usr/sbin/policy-rc.d")
_lock = threading.Lock()

# What each application of the local stack installs, and the debconf answers that keep its maintainer
# scripts away from any database: RT's dbconfig-common would otherwise create a database of its own on a
# system PostgreSQL. Recommends stay out (a database server, imagemagick, cron), except w3m: without an
# external HTML formatter RT warns on every start and formats HTML mail more slowly.
APPLICATION_PACKAGES: dict[str, tuple[str, ...]] = {
    "mediawiki": ("mediawiki", "php-cli"),
    "request-tracker": ("request-tracker5", "rt5-db-postgresql", "w3m"),
    "tryton": ("tryton-server", "tryton-modules-party", "tryton-modules-sale-opportunity", "python3-psycopg2"),
}
DEBCONF_SELECTIONS: dict[str, tuple[str, ...]] = {
    "request-tracker": (
        "request-tracker5 request-tracker5/dbconfig-install boolean false",
        "request-tracker5 request-tracker5/install-cronjobs boolean false",
    ),
}


# The headless browser the web console's tests drive (Playwright pointed at Debian's Chromium: Playwright
# cannot download its own browser where only the package mirror is reachable).
BROWSER = Path("/usr/bin/chromium")
BROWSER_PACKAGES = ("chromium", "chromium-driver")


def _missing_database_packages() -> list[str]:
    missing = []
    if not (POSTGRES_BIN / "postgres").exists():
        missing.append(f"postgresql-{versions.POSTGRES_MAJOR}")
    if not shutil.which("mariadbd", path=os.environ.get("PATH", "") + ":/usr/sbin") or not shutil.which(
        "mariadb-install-db"
    ):
        missing += ["mariadb-server", "mariadb-client"]
    return missing


def installed(package: str) -> bool:
    try:
        done = subprocess.run(
            ["dpkg-query", "--show", "--showformat=${db:Status-Status}", package],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == "installed"


def ensure_database_packages(progress: Progress) -> None:
    with _lock:
        _install(_missing_database_packages(), progress)


def ensure_application_packages(applications: Iterable[str], progress: Progress) -> None:
    """Install what every named application needs in one apt-get run: the first server to ask installs
    for all of them, the others find nothing missing."""
    with _lock:
        names = list(dict.fromkeys(applications))
        missing = [package for name in names for package in APPLICATION_PACKAGES[name] if not installed(package)]
        selections = [line for name in names for line in DEBCONF_SELECTIONS.get(name, ())]
        _install(list(dict.fromkeys(missing)), progress, selections)


def ensure_browser_packages(progress: Progress) -> Path:
    """Debian's Chromium, installed on first use; its path."""
    with _lock:
        if not BROWSER.exists():
            _install([package for package in BROWSER_PACKAGES if not installed(package)], progress)
    return BROWSER


def _install(missing: Sequence[str], progress: Progress, debconf: Sequence[str] = ()) -> None:
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(f"missing Debian packages {missing}: run `sudo apt-get install -y {' '.join(missing)}`")
    progress(f"installing {', '.join(missing)} with apt-get (once)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if debconf:
        run(["debconf-set-selections"], what="debconf-set-selections", input="\n".join(debconf) + "\n", env=env)
    own_policy = not POLICY_RC.exists()
    if own_policy:  # exit 101 = "do not start services" for invoke-rc.d during installation
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
    try:
        run(["apt-get", "update"], what="apt-get update", env=env)
        run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            what="apt-get install",
            env=env,
            timeout=1800,
        )
    finally:
        if own_policy:
            POLICY_RC.unlink(missing_ok=True)
