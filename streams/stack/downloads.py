"""Downloads from Maven Central through `mvn`, cached under settings.cache_dir so that a fresh clone
on the same machine never downloads again. Copies left in <stack_home>/downloads are adopted."""

from __future__ import annotations

import shutil
import tarfile
import threading
from pathlib import Path

from streams.settings import Settings
from streams.stack import versions
from streams.stack.runner import Progress, StackError, run

POM = Path(__file__).with_name("pom.xml")
_lock = threading.Lock()


def _mvn(*goal: str, what: str) -> None:
    """Run a Maven goal quietly, in batch mode, against the stack's pom.xml (its repositories)."""
    run(["mvn", "-q", "-B", "-f", str(POM), *goal], what=what)


def _adopt(settings: Settings, name: str) -> bool:
    """Move a copy left in <stack_home>/downloads into the cache."""
    legacy = settings.stack_home / "downloads" / name
    if legacy.exists():
        shutil.move(str(legacy), str(settings.cache_dir / name))
        return True
    return False


def kafka_libs(settings: Settings, progress: Progress) -> Path:
    """The Kafka broker + Connect runtime jars (one folder, used as `-cp 'libs/*'`)."""
    with _lock:
        target = settings.cache_dir / f"kafka-libs-{versions.KAFKA_VERSION}"
        marker = target / f"kafka-clients-{versions.KAFKA_VERSION}.jar"
        if marker.exists() and (target / ".complete").exists():
            return target
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        progress(f"kafka: resolving jars from Maven Central into {target}")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _mvn(
            "dependency:copy-dependencies", f"-DoutputDirectory={partial}", "-DincludeScope=runtime", what="kafka (mvn)"
        )
        (partial / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return target


def _maven_copy(settings: Settings, artifact: str, file_name: str, progress: Progress) -> Path:
    path = settings.cache_dir / file_name
    if path.exists() or _adopt(settings, file_name):
        return path
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {artifact}")
    _mvn(
        "dependency:copy",
        f"-Dartifact={artifact}",
        f"-DoutputDirectory={settings.cache_dir}",
        what=f"download {artifact}",
    )
    if not path.exists():
        raise StackError(f"mvn did not produce {path}")
    return path


def debezium_plugin_path(settings: Settings, progress: Progress) -> Path:
    """A Connect plugin.path holding the Debezium PostgreSQL and MariaDB connectors."""
    with _lock:
        plugins = settings.cache_dir / f"connect-plugins-{versions.DEBEZIUM_VERSION}"
        for name, artifact in versions.DEBEZIUM_PLUGINS.items():
            folder = plugins / f"debezium-connector-{name}"
            if (folder / ".complete").exists():
                continue
            archive = _maven_copy(
                settings,
                artifact,
                f"debezium-connector-{name}-{versions.DEBEZIUM_VERSION}-plugin.tar.gz",
                progress,
            )
            shutil.rmtree(folder, ignore_errors=True)
            plugins.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:
                tar.extractall(plugins, filter="data")
            (folder / ".complete").touch()
        return plugins


def elasticsearch_zip(settings: Settings, progress: Progress) -> Path:
    with _lock:
        return _maven_copy(
            settings, versions.ELASTICSEARCH_ARTIFACT, f"elasticsearch-{versions.ELASTICSEARCH_VERSION}.zip", progress
        )
