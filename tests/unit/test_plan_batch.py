"""Planning a batch (pipeline/plan_batch.py): pure, from stored states and changes to bulk actions."""

from __future__ import annotations

from collections.abc import Iterable

from streams.pipeline.mentions import MentionPattern, Redactor, pattern_hashes
from streams.pipeline.plan_batch import (
    BatchPlan,
    Operation,
    StoredState,
    build_operations,
    plan_batch,
    read_bulk_items,
    reusable_chunk_ids,
)
from streams.records import PartChange
from tests.unit.part_changes import chunker, nobody, part_change

PAGE = "wiki/page/1"
NOW = "2026-11-21T00:00:00+00:00"


def page(version: int) -> PartChange:
    return part_change(PAGE, "page", version, title="Vacuum", groups=("engineering",))


def revision(version: int, rev_id: int, text: str, author: str) -> PartChange:
    return part_change(
        PAGE,
        "revision",
        version,
        part_id="revision",
        text=text,
        subjects=frozenset({f"email:{author}"}),
        order_key=rev_id,
    )


def plan_and_vectors(
    stored: dict[str, StoredState], changes: list[PartChange], **kw
) -> tuple[BatchPlan, list[Operation]]:
    plan = plan_batch(stored, {PAGE: changes}, chunker, kw.pop("is_forgotten", nobody), **kw)
    vectors = {chunk.text_hash: [0.1, 0.2] for chunk in plan.chunks_to_write()}
    return plan, build_operations(plan, stored, vectors, NOW)


def stored_after(plan: BatchPlan, seq_no: int = 1) -> dict[str, StoredState]:
    return {PAGE: StoredState(plan.updates[PAGE].state, seq_no, 1)}


TEXT = "\n\n".join(f"paragraph {n}" for n in range(20))


def test_a_new_document_writes_its_chunks_then_creates_its_state_record() -> None:
    plan, operations = plan_and_vectors({PAGE: StoredState(None)}, [page(10), revision(11, 100, TEXT, "ann@x.org")])
    kinds = [op.action["_op_type"] for op in operations]
    assert kinds == ["index"] * 20 + ["create"]
    assert operations[-1].action["_id"] == f"state:{PAGE}"
    assert all(op.owner == PAGE for op in operations)
    # Chunks carry the root's subjects only: the revision's author stays in the state record.
    assert operations[0].action["_source"]["subjects"] == []
    assert plan.updates[PAGE].state.parts["revision"].subjects == ["email:ann@x.org"]


def test_a_new_revision_by_another_author_writes_only_the_changed_chunk() -> None:
    first, _ = plan_and_vectors({PAGE: StoredState(None)}, [page(10), revision(11, 100, TEXT, "ann@x.org")])
    edited = TEXT.replace("paragraph 7", "paragraph seven, rewritten")
    _, operations = plan_and_vectors(stored_after(first), [revision(12, 101, edited, "bob@x.org")])
    written = [op.action["_id"] for op in operations if op.action["_op_type"] == "index" and "#" in op.action["_id"]]
    assert written == [f"{PAGE}#revision#7"]
    state = operations[-1]
    assert state.action["_op_type"] == "index" and state.action["if_seq_no"] == 1  # optimistic concurrency
    assert state.action["_source"]["parts"]["revision"]["subjects"] == ["email:bob@x.org"]


def test_a_change_of_author_alone_writes_the_state_record_only() -> None:
    first, _ = plan_and_vectors({PAGE: StoredState(None)}, [page(10), revision(11, 100, TEXT, "ann@x.org")])
    _, operations = plan_and_vectors(stored_after(first), [revision(12, 101, TEXT, "bob@x.org")])
    assert [op.action["_id"] for op in operations] == [f"state:{PAGE}"]


def test_the_write_path_redacts_a_forgotten_persons_mentions_before_chunking() -> None:
    key = b"k"
    redactor = Redactor(key, pattern_hashes(key, [MentionPattern("name", "Priya Park")]))
    text = "Steps\n\nPriya Park saw the printer burn\n\nThe end"
    plan, operations = plan_and_vectors(
        {PAGE: StoredState(None)}, [page(10), revision(11, 100, text, "ann@x.org")], redact=redactor.redact
    )
    texts = [chunk.text for chunk in plan.chunks_to_write()]  # what goes to the model
    assert texts == ["Steps", "[redacted] saw the printer burn", "The end"]
    assert "Priya" not in str([op.action for op in operations])


def test_a_forgotten_author_is_never_indexed() -> None:
    def forgotten(subjects: Iterable[str]) -> bool:
        return "email:ann@x.org" in set(subjects)

    plan, operations = plan_and_vectors(
        {PAGE: StoredState(None)}, [page(10), revision(11, 100, TEXT, "ann@x.org")], is_forgotten=forgotten
    )
    assert [op.action["_op_type"] for op in operations] == ["create"]
    assert plan.updates[PAGE].suppressed


def test_vectors_of_unchanged_texts_are_read_back_not_embedded() -> None:
    first, _ = plan_and_vectors({PAGE: StoredState(None)}, [page(10), revision(11, 100, TEXT, "ann@x.org")])
    stored = stored_after(first)
    # Everything moves down one position: same texts, new positions.
    plan = plan_batch(stored, {PAGE: [revision(12, 101, "new\n\n" + TEXT, "ann@x.org")]}, chunker, nobody)
    reusable = reusable_chunk_ids(plan, stored)
    assert len(reusable) == 20 and f"{PAGE}#revision#0" in reusable


def test_bulk_items_are_classified_by_their_document() -> None:
    ids = {"a#root#0": "a", "state:a": "a", "b#root#3": "b", "c#root#0": "c", "d#root#0": "d"}
    operations = [Operation(owner, {"_id": item_id}) for item_id, owner in ids.items()]
    items = [  # in another order than the operations: the helper returns an item it sent again last
        {"index": {"_id": "d#root#0", "status": 429}},
        {"index": {"_id": "state:a", "status": 409}},
        {"index": {"_id": "c#root#0", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
        {"delete": {"_id": "b#root#3", "status": 404}},
        {"index": {"_id": "a#root#0", "status": 201}},
    ]
    outcome = read_bulk_items(operations, items)
    assert outcome.conflicts == {"a"}
    assert set(outcome.rejected) == {"c"} and "mapper_parsing_exception" in str(outcome.rejected["c"])
    assert outcome.transient is not None and "429" in outcome.transient
