"""Debian packages the local stack needs: installed on first use, without starting the system's
own database services (we run private servers; the system ones would only take ports and memory)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from streams.stack import versions
from streams.stack.runner import Progress, StackError, run

POSTGRES_BIN = Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin")
POLICY_RC = Path("/usr/sbin/policy-rc.d")
_lock = threading.Lock()


def _missing() -> list[str]:
    missing = []
    if not (POSTGRES_BIN / "postgres").exists():
        missing.append(f"postgresql-{versions.POSTGRES_MAJOR}")
    if not shutil.which("mariadbd", path=os.environ.get("PATH", "") + ":/usr/sbin") or not shutil.which(
        "mariadb-install-db"
    ):
        missing += ["mariadb-server", "mariadb-client"]
    return missing


def ensure_database_packages(progress: Progress) -> None:
    with _lock:
        missing = _missing()
        if not missing:
            return
        if os.geteuid() != 0:
            raise StackError(f"missing Debian packages {missing}: run `sudo apt-get install -y {' '.join(missing)}`")
        progress(f"installing {', '.join(missing)} with apt-get (once)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        own_policy = not POLICY_RC.exists()
        if own_policy:  # exit 101 = "do not start services" for invoke-rc.d during installation
            POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
            POLICY_RC.chmod(0o755)
        try:
            run(["apt-get", "update"], what="apt-get update", env=env)
            run(["apt-get", "install", "-y", "--no-install-recommends", *missing], what="apt-get install", env=env)
        finally:
            if own_policy:
                POLICY_RC.unlink(missing_ok=True)
