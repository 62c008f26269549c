"""Build and install the `english` analyzer plugin (streams/stack/analysis_english/) into the local
Elasticsearch.

The integ-test distribution the local stack runs has no analysis-common module, so no `english`
analyzer: BM25 would match exact word forms only ("vacuuming" would not find "vacuum"). Its lib/
already holds Lucene's analysis-common jar (EnglishAnalyzer), so the plugin is one small class,
compiled with javac against the distribution's own jars (the exact server it loads into, no download)
and cached under the settings' cache directory, keyed by its source and the Elasticsearch version.

The same plugin adds the analysis-common parts that Elasticsearch's `.security` index needs (the
`uax_url_email` tokenizer, the `pattern_capture` and `unique` filters): with security on
(streams/stack/elasticsearch_security.py) API keys live in that index.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from streams.stack import versions
from streams.stack.java import java_home
from streams.stack.runner import Progress, run

PLUGIN_NAME = "streams-analysis-english"
SOURCE_DIR = Path(__file__).with_name("analysis_english")


def _fingerprint() -> str:
    digest = hashlib.sha256(versions.ELASTICSEARCH_VERSION.encode())
    for path in sorted(SOURCE_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(SOURCE_DIR).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def build_plugin(dist: Path, cache_dir: Path, progress: Progress) -> Path:
    """The plugin's directory (descriptor + jar), built once per source and Elasticsearch version."""
    built = cache_dir / f"{PLUGIN_NAME}-{versions.ELASTICSEARCH_VERSION}-{_fingerprint()}"
    if (built / ".complete").exists():
        return built
    progress(f"elasticsearch: building the {PLUGIN_NAME} plugin (javac against {dist.name}/lib)")
    javac = java_home() / "bin" / "javac"
    if not javac.exists():
        from streams.stack.runner import StackError

        raise StackError(f"{javac} is missing: install a JDK (apt-get install -y openjdk-17-jdk-headless)")
    shutil.rmtree(built, ignore_errors=True)
    built.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        sources = [str(p) for p in sorted((SOURCE_DIR / "src").rglob("*.java"))]
        run(
            [str(javac), "--release", "17", "-cp", f"{dist / 'lib'}/*", "-d", tmp, *sources],
            what=f"{PLUGIN_NAME} (javac)",
        )
        run(
            [str(java_home() / "bin" / "jar"), "cf", str(built / f"{PLUGIN_NAME}.jar"), "-C", tmp, "."],
            what=f"{PLUGIN_NAME} (jar)",
        )
    descriptor = (SOURCE_DIR / "plugin-descriptor.properties").read_text(encoding="utf-8")
    (built / "plugin-descriptor.properties").write_text(
        descriptor.replace("@ELASTICSEARCH_VERSION@", versions.ELASTICSEARCH_VERSION), encoding="utf-8"
    )
    (built / ".complete").touch()
    return built


def install_plugin(dist: Path, cache_dir: Path, progress: Progress) -> None:
    """Copy the built plugin into the distribution's plugins/ (Elasticsearch loads it at start)."""
    built = build_plugin(dist, cache_dir, progress)
    target = dist / "plugins" / PLUGIN_NAME
    marker = target / ".fingerprint"
    if marker.exists() and marker.read_text() == built.name:
        return
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in built.iterdir():
        if not path.name.startswith("."):
            shutil.copy(path, target / path.name)
    marker.write_text(built.name)
    progress(f"elasticsearch: installed the {PLUGIN_NAME} plugin (`english`, and what .security needs)")
