"""The wiki's corpus: the PostgreSQL 15 manual that Debian ships as HTML, converted to wikitext.

Converting all ~1,200 pages takes a few seconds, so the result is cached (keyed by the files'
names, sizes and the converter's version) under the settings' cache directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from streams.errors import StreamsError
from streams.sources.html_to_wikitext import WikiPage, html_to_wikitext, page_title

log = logging.getLogger(__name__)

DOC_PACKAGE = "postgresql-doc-15"
DOC_DIR = Path("/usr/share/doc/postgresql-doc-15/html")
_CONVERTER_VERSION = "2"  # the writer walks lxml's tree
_MIN_TEXT_CHARS = 400  # chapter landing pages are little more than a table of contents
_SKIPPED_FILES = frozenset({"bookindex.html", "index.html", "legalnotice.html"})


class CorpusUnavailable(StreamsError):
    """The documentation corpus is missing and could not be installed."""

    stage = "source"


def ensure_corpus(html_dir: Path = DOC_DIR, *, install: bool = True) -> Path:
    """Return ``html_dir`` when it holds HTML pages; otherwise install the Debian package that
    provides it (only for the default directory), or raise CorpusUnavailable saying what to do."""
    if _has_pages(html_dir):
        return html_dir
    hint = f"install it with: apt-get update && apt-get install -y {DOC_PACKAGE}"
    if html_dir != DOC_DIR or not install:
        raise CorpusUnavailable(f"no HTML pages under {html_dir}; {hint}")
    apt = shutil.which("apt-get")
    if apt is None:
        raise CorpusUnavailable(f"{html_dir} is missing and apt-get is not available; {hint}")
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        raise CorpusUnavailable(f"{html_dir} is missing and this user cannot run apt-get; {hint}")
    log.warning("the wiki corpus %s is missing: installing %s with apt-get", html_dir, DOC_PACKAGE)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_cmd = [*prefix, apt, "install", "-y", "--no-install-recommends", DOC_PACKAGE]
    if subprocess.run(install_cmd, env=env, check=False).returncode != 0:
        subprocess.run([*prefix, apt, "update"], env=env, check=False)
        if subprocess.run(install_cmd, env=env, check=False).returncode != 0:
            raise CorpusUnavailable(f"apt-get could not install {DOC_PACKAGE}; {hint}")
    if not _has_pages(html_dir):
        raise CorpusUnavailable(f"{DOC_PACKAGE} is installed but {html_dir} has no HTML pages")
    return html_dir


def load_corpus(html_dir: Path, cache_dir: Path | None = None) -> list[WikiPage]:
    """Every substantial page of the manual as wikitext, in file-name order, titles unique."""
    files = sorted(p for p in html_dir.glob("*.html") if p.name not in _SKIPPED_FILES)
    key = hashlib.sha256(
        "\n".join([_CONVERTER_VERSION, *(f"{p.name}:{p.stat().st_size}" for p in files)]).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"wiki-corpus-{key}.json" if cache_dir else None
    if cache and cache.exists():
        try:
            return [WikiPage(**row) for row in json.loads(cache.read_text(encoding="utf-8"))]
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable corpus cache %s: %s", cache, exc)
    pages = _convert(files)
    if cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps([p.__dict__ for p in pages]), encoding="utf-8")
            tmp.replace(cache)
        except OSError as exc:
            log.warning("could not cache the corpus at %s: %s", cache, exc)
    return pages


def _convert(files: list[Path]) -> list[WikiPage]:
    html = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in files}
    titles: dict[str, str] = {}
    seen: dict[str, int] = {}
    for name, text in html.items():
        title = page_title(text) or name.removesuffix(".html")
        seen[title] = seen.get(title, 0) + 1
        # Many chapters have an "Introduction" or an "Overview": name the later ones after their file.
        titles[name] = title if seen[title] == 1 else f"{title} ({name.removesuffix('.html')})"
    pages = []
    for name, text in html.items():
        page = html_to_wikitext(text, titles)
        if len(page.text) >= _MIN_TEXT_CHARS:
            pages.append(WikiPage(title=titles[name], text=page.text))
    return pages


def _has_pages(html_dir: Path) -> bool:
    return html_dir.is_dir() and any(html_dir.glob("*.html"))
