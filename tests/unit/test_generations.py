"""Index generations, the pure parts: what an index remembers of how it was built, which generations a
migration writes, the writer that writes each batch to all of them (the serving one decides the
batch's result), and the workers a migration step still waits for."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from elasticsearch import NotFoundError

from streams.agents.write_changes import GenerationsWriter, WriteResult
from streams.elastic.generations import GenerationConfig, Migration, serving_index
from streams.elastic.worker_registry import LiveWorker, behind_migration
from streams.errors import IndexingError
from streams.forget.verify import Verification
from streams.migrate import _model_config
from streams.records import PartChange
from tests.unit.test_plan_batch import page

CONFIG = GenerationConfig("all-MiniLM-L6-v2", None, 256, 32)


def test_an_index_remembers_how_it_was_built() -> None:
    assert GenerationConfig.from_meta(CONFIG.to_meta()) == CONFIG
    assert GenerationConfig.from_meta(None) is None  # an index from before generations: the settings decide
    assert GenerationConfig.from_meta({"other": 1}) is None


def test_a_migration_writes_the_previous_and_the_target_generation_in_order() -> None:
    migration = Migration("streams-chunks", "streams-chunks-v10", "streams-chunks-v9")
    assert migration.generations == ["streams-chunks-v9", "streams-chunks-v10"]  # by number, not by text
    assert Migration.from_json(migration.to_json()) == migration


def test_a_migration_record_of_an_earlier_release_is_read_without_its_serving_field() -> None:
    """The alias alone says which generation serves; records written before still carry `serving`."""
    stored = {**Migration("streams-chunks", "streams-chunks-v2", "streams-chunks-v1").to_json()}
    stored["serving"] = "streams-chunks-v1"
    assert Migration.from_json(stored) == Migration(
        "streams-chunks", "streams-chunks-v2", "streams-chunks-v1", version=stored["version"]
    )


class FakeWriter:
    def __init__(self, name: str, log: list[str], fail: bool = False, embedded: int = 1) -> None:
        self.name, self.log, self.fail, self.embedded = name, log, fail, embedded

    async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
        self.log.append(self.name)
        if self.fail:
            return WriteResult(failed=[(c, IndexingError("refused")) for c in changes], chunks_embedded=self.embedded)
        return WriteResult(applied=list(changes), chunks_embedded=self.embedded, chunks_written=2)


def test_the_serving_generation_is_written_first_and_decides_the_result() -> None:
    order: list[str] = []
    writer = GenerationsWriter(
        {"v2": FakeWriter("v2", order, fail=True, embedded=3), "v1": FakeWriter("v1", order)},
        "v1",  # type: ignore[dict-item]
    )
    result = asyncio.run(writer.write([page(1)]))
    assert order == ["v1", "v2"]
    assert result.applied == [page(1)] and result.failed == []  # v2's refusal is logged, not dead-lettered twice
    assert (result.chunks_embedded, result.chunks_written) == (4, 2)  # the model's work in both generations


def test_replacing_the_generations_waits_for_the_batch_in_flight() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []

        class Slow(FakeWriter):
            async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
                await asyncio.sleep(0.05)
                events.append("old batch written")
                return WriteResult()

        writer = GenerationsWriter({"v1": Slow("v1", [])}, "v1")  # type: ignore[dict-item]
        batch = asyncio.create_task(writer.write([page(1)]))
        await asyncio.sleep(0.01)
        await writer.replace({"v1": FakeWriter("v1", []), "v2": FakeWriter("v2", [])}, "v1")  # type: ignore[dict-item]
        events.append("replaced")
        await batch
        return events

    assert asyncio.run(scenario()) == ["old batch written", "replaced"]


def test_a_migration_step_waits_for_every_worker_not_on_its_record() -> None:
    def applied(**versions: int) -> dict[str, LiveWorker]:
        return {instance: LiveWorker({}, version) for instance, version in versions.items()}

    assert behind_migration(applied(a=5, b=4, c=6), 5) == ["b", "c"]
    assert behind_migration(applied(a=0), 0) == []  # finish: the record is gone everywhere
    assert behind_migration(applied(a=5), 0) == ["a"]


def test_verifications_of_two_models_add_up() -> None:
    assert Verification(0, 0, 0, 0).merged(Verification(0, 0, 0, 0)).clean
    assert not Verification(0, 0, 0, 0).merged(Verification(0, 1, 0, 0)).clean


def test_model_is_a_folder_or_a_name(tmp_path: pytest.TempPathFactory) -> None:
    folder = tmp_path / "my-model"  # type: ignore[operator]
    folder.mkdir()
    assert _model_config(str(folder)) == {"model_name": "my-model", "model_path": str(folder.resolve())}
    assert _model_config("all-mpnet-base-v2") == {"model_name": "all-mpnet-base-v2", "model_path": None}
    assert _model_config(None) == {}


def test_a_deletion_request_covers_the_alias_and_every_generation_once_per_model() -> None:
    from types import SimpleNamespace

    from streams.agents.runtime import Runtime
    from streams.settings import Settings

    minilm = SimpleNamespace(model_name="all-MiniLM-L6-v2", model_path=None)
    # A second load of the same model (another object) is the same model: one group, not two.
    minilm_again = SimpleNamespace(model_name="all-MiniLM-L6-v2", model_path=None)
    other = SimpleNamespace(model_name="other", model_path="/models/other")
    made_by = (("streams-chunks-v1", minilm), ("streams-chunks-v2", minilm_again), ("streams-chunks-v3", other))
    writers = {name: SimpleNamespace(embedder=embedder) for name, embedder in made_by}
    # The deletion lane works with its own copy of each model (never the indexing copy, which may be busy).
    copies = {"all-MiniLM-L6-v2": "minilm's copy", "other": "other's copy"}
    embedders = SimpleNamespace(urgent=lambda embedder: copies[embedder.model_name])
    runtime = Runtime(
        Settings(),
        None,
        "streams-chunks-v1",
        minilm,
        None,
        GenerationsWriter(writers, "streams-chunks-v1"),  # type: ignore[arg-type]
        None,
        embedders,  # type: ignore[arg-type]
    )
    assert runtime.forget_groups() == [
        ("streams-chunks,streams-chunks-v1,streams-chunks-v2", "minilm's copy"),
        ("streams-chunks-v3", "other's copy"),
    ]


def test_one_model_copy_per_model_for_indexing_and_one_for_the_deletion_lane() -> None:
    from streams.agents.runtime import Embedders
    from streams.settings import Settings

    embedders = Embedders(Settings())
    minilm = embedders.get(GenerationConfig("all-MiniLM-L6-v2", None, 256, 32))
    assert embedders.get(GenerationConfig("all-MiniLM-L6-v2", None, 96, 16)) is minilm  # a chunking change
    urgent = embedders.urgent(minilm)
    assert urgent is not minilm and embedders.urgent(minilm) is urgent
    assert (urgent.model_name, urgent.model_path) == (minilm.model_name, minilm.model_path)
    other = embedders.get(GenerationConfig("minilm-l3", "/models/minilm-l3", 256, 32))
    assert other is not minilm and embedders.urgent(other).model_path == "/models/minilm-l3"


class FakeIndices:
    def __init__(self, aliases: dict[str, dict[str, object]] | None) -> None:
        self.aliases = aliases

    def get_alias(self, name: str) -> dict[str, object]:
        if self.aliases is None:
            raise NotFoundError(404, "alias_missing", {})  # type: ignore[arg-type]
        return {index: {"aliases": {name: body}} for index, body in self.aliases.items()}


def test_the_serving_generation_is_the_alias_write_index_or_its_only_index() -> None:
    def serving(aliases: dict[str, dict[str, object]] | None) -> str | None:
        return serving_index(SimpleNamespace(indices=FakeIndices(aliases)), "streams-chunks")  # type: ignore[arg-type]

    assert serving({"streams-chunks-v1": {}, "streams-chunks-v2": {"is_write_index": True}}) == "streams-chunks-v2"
    assert serving({"streams-chunks-v1": {}}) == "streams-chunks-v1"  # an alias made before write indices
    assert serving({"streams-chunks-v1": {}, "streams-chunks-v2": {}}) is None  # ambiguous: no guess
    assert serving(None) is None
