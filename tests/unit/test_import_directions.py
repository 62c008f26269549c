"""Data flows one way, and so do imports: nothing low imports anything high.

- streams/pipeline/ is pure: besides the standard library and third-party packages it imports only
  streams.records, streams.errors and itself.
- streams/elastic/ only reads and writes the index: it imports nothing from the agents, the sources,
  the bench, the CLI, the local stack or the embedder, and no Kafka client.
- streams/forget/ is the deletion lane's logic: the agent (streams/agents/) calls it, never the
  other way round, so it imports no agent.
- streams/app.py builds the worker (`create_app`) and only the `streams worker` command imports it: an
  agent reaches the settings and the worker's state through the service it is registered with.
- streams/resources.py, which every layer asks where the schemas and connectors are, imports only the
  settings (for their type).

Imports are read with `ast` (every `import` and `from ... import`, at any depth, including those
inside functions), so a lazy import cannot hide a wrong direction.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "streams"

PIPELINE_MAY_IMPORT = ("streams.records", "streams.errors", "streams.pipeline")
ELASTIC_MUST_NOT_IMPORT = (
    "streams.agents",
    "streams.sources",
    "streams.bench",
    "streams.cli",
    "streams.stack",
    "streams.embedding",
)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every import of a `streams` module in `path`, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from streams import avro` imports the module streams.avro.
            found += [
                (node.lineno, f"{module}.{alias.name}" if module == "streams" else module) for alias in node.names
            ]
    return [(line, name) for line, name in found if name == "streams" or name.startswith("streams.")]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def violations(
    directory: str, allowed: tuple[str, ...] | None, forbidden: tuple[str, ...], package: Path = PACKAGE
) -> list[str]:
    found = []
    for path in sorted((package / directory).rglob("*.py")):
        for line, name in project_imports(path, package):
            if (allowed is not None and not _within(name, allowed)) or _within(name, forbidden):
                found.append(f"{path.relative_to(package.parent)}:{line} imports {name}")
    return found


def test_pipeline_imports_only_records_and_errors() -> None:
    assert violations("pipeline", PIPELINE_MAY_IMPORT, ()) == []


def test_elastic_imports_nothing_above_it() -> None:
    assert violations("elastic", None, ELASTIC_MUST_NOT_IMPORT) == []


def test_elastic_holds_no_kafka() -> None:
    assert third_party_imports("elastic", KAFKA) == []


def test_forget_imports_no_agent() -> None:
    assert violations("forget", None, ("streams.agents", "streams.app")) == []


KAFKA = ("confluent_kafka", "faust", "aiokafka")


def third_party_imports(directory: str, forbidden: tuple[str, ...], package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted((package / directory).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            found += [
                f"{path.relative_to(package.parent)}:{node.lineno} imports {name}"
                for name in names
                if _within(name, forbidden)
            ]
    return found


def importers(module: str, package: Path = PACKAGE) -> list[str]:
    """The files of `package` that import `module`."""
    return sorted(
        str(path.relative_to(package.parent))
        for path in package.rglob("*.py")
        if any(_within(name, (module,)) for _, name in project_imports(path, package))
    )


def test_only_the_worker_command_imports_the_app() -> None:
    assert importers("streams.app") == ["streams/agents/commands.py"]


def test_resources_import_only_the_settings() -> None:
    imported = {name for _, name in project_imports(PACKAGE / "resources.py")}
    assert imported <= {"streams.settings"}


# The checks themselves, made to fail on purpose.


def test_the_reader_sees_lazy_relative_and_package_imports(tmp_path: Path) -> None:
    package = tmp_path / "streams"
    (package / "elastic").mkdir(parents=True)
    (package / "elastic" / "bad.py").write_text(
        "import json\n"
        "from streams.records import ChunkText\n"
        "from streams import avro\n"
        "from ..agents import runtime\n"
        "def later():\n"
        "    from streams.embedding.embedder import Embedder\n"
        "    import streams.stack.runner\n"
    )
    (package / "elastic" / "kafka.py").write_text("from confluent_kafka import Producer\nimport faust\n")
    assert third_party_imports("elastic", KAFKA, package) == [
        "streams/elastic/kafka.py:1 imports confluent_kafka",
        "streams/elastic/kafka.py:2 imports faust",
    ]
    found = violations("elastic", None, ELASTIC_MUST_NOT_IMPORT, package)
    pure = violations("elastic", PIPELINE_MAY_IMPORT, (), package)
    assert found == [
        "streams/elastic/bad.py:4 imports streams.agents",
        "streams/elastic/bad.py:6 imports streams.embedding.embedder",
        "streams/elastic/bad.py:7 imports streams.stack.runner",
    ]
    (package / "agents").mkdir()
    (package / "agents" / "health.py").write_text("from streams.app import settings\n")
    assert importers("streams.app", package) == ["streams/agents/health.py"]
    assert pure == [
        "streams/elastic/bad.py:3 imports streams.avro",
        "streams/elastic/bad.py:4 imports streams.agents",
        "streams/elastic/bad.py:6 imports streams.embedding.embedder",
        "streams/elastic/bad.py:7 imports streams.stack.runner",
    ]
