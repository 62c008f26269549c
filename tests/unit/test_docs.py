"""The README and docs/ stay true to the repository: the README stays short, every relative link
(and its #anchor) points at something that exists, no page speaks of the project's own process
(sessions, branches, issue numbers), every setting is in the settings reference, every
`STREAMS_*` variable a page names is a setting, and the README's commands table lists every
command and subcommand the CLI has."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from streams.cli import COMMANDS, main
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
README_MAX_LINES = 250
FORBIDDEN = re.compile(r"this session|this branch|issue [0-9]|issue #|main at", re.IGNORECASE)
# Environment variables the pages name that are not settings fields: the fault suite's size, and where
# the browser tests keep their screenshots.
NOT_SETTINGS = {"STREAMS_FAULTS", "STREAMS_TEST_ARTIFACTS"}

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
ENV_NAME = re.compile(r"\bSTREAMS_[A-Z0-9_]*[A-Z0-9]\b")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _anchors(page: Path) -> set[str]:
    return {_anchor(h) for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8")))}


def _links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check here
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor})")
    return broken


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the rest belongs in docs/"


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#a-heading) [web](https://example.com/x)\n"
        "[gone](missing.md) [no anchor](other.md#nothing)\n```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md (no such file)", "other.md#nothing (no heading #nothing)"]


def test_anchors_follow_githubs_rule() -> None:
    assert _anchor("Where a subject's data can live") == "where-a-subjects-data-can-live"
    assert _anchor("After `make demo`") == "after-make-demo"
    assert _anchor("Sources, connectors and topics") == "sources-connectors-and-topics"


def test_no_page_speaks_of_sessions_branches_or_issue_numbers() -> None:
    found = [
        f"{_relative(path)}:{number}: {line.strip()}"
        for path in [README, *sorted(p for p in DOCS.rglob("*") if p.is_file())]
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert found == []


def test_every_setting_is_in_the_settings_reference() -> None:
    reference = (DOCS / "settings.md").read_text(encoding="utf-8")
    missing = [
        f"STREAMS_{name.upper()}" for name in Settings.model_fields if f"`STREAMS_{name.upper()}`" not in reference
    ]
    assert missing == []


def test_every_streams_variable_a_page_names_is_a_setting() -> None:
    settings = {f"STREAMS_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(
        f"{_relative(page)}: {name}"
        for page in PAGES
        for name in set(ENV_NAME.findall(page.read_text(encoding="utf-8")))
        if name not in settings | NOT_SETTINGS
    )
    assert unknown == []


def test_no_setting_is_listed_as_not_a_setting() -> None:
    """Once a name listed above becomes a settings field, it must leave the list (and be checked)."""
    assert NOT_SETTINGS.isdisjoint(f"STREAMS_{name.upper()}" for name in Settings.model_fields)


def _command_rows() -> list[str]:
    return [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `streams ")]


def test_the_commands_table_lists_every_command_and_subcommand() -> None:
    rows = _command_rows()
    context = click.Context(main)
    missing = []
    for name in COMMANDS:
        command = main.get_command(context, name)
        own_rows = [row for row in rows if row.startswith((f"| `streams {name} ", f"| `streams {name}`"))]
        if not own_rows:
            missing.append(name)
        elif isinstance(command, click.Group):
            text = " ".join(own_rows)
            missing += [f"{name} {sub}" for sub in command.commands if not re.search(rf"\b{re.escape(sub)}\b", text)]
    assert missing == []
