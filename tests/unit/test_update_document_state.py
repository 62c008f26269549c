"""The ordering rules, over small hand-built part changes (no Kafka, no Elasticsearch)."""

from __future__ import annotations

from collections.abc import Iterable

from streams.pipeline.update_document_state import apply_changes
from streams.records import PartChange
from tests.unit.part_changes import chunker, part_change
from tests.unit.part_changes import nobody as nobody_forgotten

DOC = "tickets/ticket/1"


def root(version: int, text: str = "a\n\nb", deleted: bool = False, groups=("support",), **kw) -> PartChange:
    return part_change(
        DOC,
        "tickets",
        version,
        deleted=deleted,
        text=text,
        title="Printer on fire",
        groups=groups,
        subjects=frozenset({"email:alice@example.com"}),
        **kw,
    )


def comment(version: int, cid: int = 7, text: str = "c", deleted: bool = False) -> PartChange:
    return part_change(
        DOC,
        "ticket_comments",
        version,
        part_id=f"ticket_comments/{cid}",
        deleted=deleted,
        text=text,
        subjects=frozenset({"email:bob@example.com"}),
    )


def test_new_document_writes_every_chunk():
    update = apply_changes(None, [root(10), comment(11)], chunker, nobody_forgotten)
    assert {k: len(v) for k, v in update.write_parts.items()} == {"root": 2, "ticket_comments/7": 1}
    assert update.state.visible and update.delete_ids == []


def test_older_version_is_stale_in_any_order():
    state = apply_changes(None, [root(20, text="new")], chunker, nobody_forgotten).state
    update = apply_changes(state, [root(10, text="old"), root(20, text="old dup")], chunker, nobody_forgotten)
    assert len(update.stale) == 2 and not update.write_parts and update.state.root.version == 20


def test_delete_then_late_update_stays_deleted():
    state = apply_changes(None, [root(10), comment(11)], chunker, nobody_forgotten).state
    deleted = apply_changes(state, [root(30, deleted=True)], chunker, nobody_forgotten)
    assert sorted(deleted.delete_ids) == sorted(state.chunk_ids())
    late = apply_changes(deleted.state, [root(20), comment(25, text="late")], chunker, nobody_forgotten)
    assert len(late.stale) == 1 and not late.write_parts and not late.state.visible


def test_groups_only_change_rewrites_no_chunk_and_refreshes_all():
    state = apply_changes(None, [root(10), comment(11)], chunker, nobody_forgotten).state
    update = apply_changes(state, [root(12, groups=("billing",))], chunker, nobody_forgotten)
    assert update.write_parts == {} and sorted(update.refresh_parts) == ["root", "ticket_comments/7"]


def test_one_paragraph_edit_rewrites_only_that_part():
    state = apply_changes(None, [root(10), comment(11), comment(12, cid=8)], chunker, nobody_forgotten).state
    update = apply_changes(state, [comment(13, cid=8, text="edited")], chunker, nobody_forgotten)
    assert list(update.write_parts) == ["ticket_comments/8"] and update.refresh_parts == []


def test_one_paragraph_edit_writes_only_the_chunk_that_changed():
    state = apply_changes(None, [root(10, text="a\n\nb\n\nc\n\nd")], chunker, nobody_forgotten).state
    update = apply_changes(state, [root(11, text="a\n\nB!\n\nc\n\nd")], chunker, nobody_forgotten)
    assert {part: [(c.number, c.text) for c in chunks] for part, chunks in update.write_parts.items()} == {
        "root": [(1, "B!")]
    }
    assert update.refresh_parts == [] and update.delete_ids == []
    assert update.state.parts["root"].version == 11


def test_shortened_part_deletes_its_tail_and_writes_nothing_else():
    state = apply_changes(None, [root(10, text="a\n\nb\n\nc")], chunker, nobody_forgotten).state
    update = apply_changes(state, [root(11, text="a\n\nb")], chunker, nobody_forgotten)
    assert update.write_parts == {"root": []} and update.delete_ids == [f"{DOC}#root#2"]


def test_same_text_at_a_newer_version_writes_no_chunk():
    state = apply_changes(None, [root(10), comment(11)], chunker, nobody_forgotten).state
    update = apply_changes(state, [comment(12)], chunker, nobody_forgotten)
    assert update.write_parts == {} and update.refresh_parts == [] and update.applied
    assert update.state.parts["ticket_comments/7"].version == 12


def test_text_and_groups_change_together_rewrite_every_chunk_of_the_part():
    state = apply_changes(None, [root(10, text="a\n\nb")], chunker, nobody_forgotten).state
    update = apply_changes(state, [root(11, text="a\n\nB!", groups=("billing",))], chunker, nobody_forgotten)
    assert [c.text for c in update.write_parts["root"]] == ["a", "B!"]


def test_comment_delete_removes_only_its_chunks():
    state = apply_changes(None, [root(10), comment(11)], chunker, nobody_forgotten).state
    update = apply_changes(state, [comment(14, deleted=True)], chunker, nobody_forgotten)
    assert update.delete_ids == [f"{DOC}#ticket_comments/7#0"]


def test_child_before_root_is_invisible_until_root_arrives():
    first = apply_changes(None, [comment(11)], chunker, nobody_forgotten)
    assert not first.state.visible and "ticket_comments/7" in first.write_parts
    second = apply_changes(first.state, [root(10)], chunker, nobody_forgotten)
    assert second.state.visible and "ticket_comments/7" in second.refresh_parts


def test_latest_revision_wins_whatever_the_order():
    def revision(rev_id: int, version: int) -> PartChange:
        return part_change(
            "wiki/page/1", "revision", version, part_id="revision", text=f"rev {rev_id}", order_key=rev_id
        )

    state = apply_changes(None, [revision(5, 50)], chunker, nobody_forgotten).state
    update = apply_changes(state, [revision(4, 60)], chunker, nobody_forgotten)
    assert update.stale and update.state.parts["revision"].order_key == 5


def test_forgotten_subject_is_never_indexed_and_state_keeps_no_personal_data():
    def forgotten(subjects: Iterable[str]) -> bool:
        return "email:alice@example.com" in set(subjects)

    update = apply_changes(None, [root(10), comment(11)], chunker, forgotten)
    assert update.write_parts == {} or all(not chunks for chunks in update.write_parts.values())
    assert update.state.subjects == [] and not update.state.visible


def test_forgetting_a_comment_author_empties_only_their_comment_and_keeps_versions():
    from streams.pipeline.update_document_state import forget_in_state

    state = apply_changes(None, [root(10), comment(11)], chunker, nobody_forgotten).state
    scrubbed = forget_in_state(state, {"email:bob@example.com"})
    assert scrubbed.parts["ticket_comments/7"].chunk_hashes == [] and scrubbed.parts["ticket_comments/7"].version == 11
    assert scrubbed.visible and "email:bob@example.com" not in scrubbed.subjects


def test_forgetting_the_requester_suppresses_the_whole_document():
    from streams.pipeline.update_document_state import forget_in_state

    state = apply_changes(None, [root(10), comment(11)], chunker, nobody_forgotten).state
    scrubbed = forget_in_state(state, {"email:alice@example.com"})
    assert not scrubbed.visible and scrubbed.subjects == [] and scrubbed.chunk_ids() == []
    late = apply_changes(scrubbed, [root(9)], chunker, nobody_forgotten)
    assert late.stale


def people(version: int, subjects: set[str], about: bool = False, name: str = "people") -> PartChange:
    """A part read through joins with no text of its own: a ticket's requestors, or its Cc and owner."""
    return part_change(DOC, "users", version, part_id=name, source="rt", subjects=frozenset(subjects), about=about)


def forgetting(*identifiers: str):
    return lambda subjects: bool(set(identifiers) & set(subjects))


def test_forgetting_a_person_the_document_is_about_suppresses_all_of_it_for_good():
    """A part marked `about` (a ticket's requestors) says whom the document is about: forgetting one
    of them removes the document, and a later edit of its root, which does not name them, keeps it
    removed."""
    from streams.pipeline.update_document_state import forget_in_state

    requestor = people(12, {"email:req@example.com", "email:other@example.com"}, about=True, name="requestors")
    state = apply_changes(None, [root(10), comment(11), requestor], chunker, nobody_forgotten).state
    scrubbed = forget_in_state(state, {"email:req@example.com"})
    assert not scrubbed.visible and scrubbed.subjects == [] and scrubbed.chunk_ids() == []
    later = apply_changes(scrubbed, [root(13, text="a new status")], chunker, nobody_forgotten)
    assert not later.state.visible and later.state.chunk_ids() == []
    kept = forget_in_state(state, {"email:someone.else@example.com"})
    assert kept.visible and kept.chunk_ids() == state.chunk_ids()


def test_a_forgotten_requestor_read_again_keeps_the_document_out_of_the_index():
    update = apply_changes(
        None,
        [root(10), people(12, {"email:req@example.com"}, about=True, name="requestors")],
        chunker,
        forgetting("email:req@example.com"),
    )
    assert not update.state.visible and update.state.subjects == [] and update.state.chunk_ids() == []


def test_forgetting_a_cc_takes_only_them_out_of_the_ticket():
    """A part without text that the document is not about (a Cc, an owner, a page's authors): the
    forgotten person leaves it, the others stay findable, the document stays searchable."""
    from streams.pipeline.update_document_state import forget_in_state

    cc = people(12, {"email:cc@example.com", "email:owner@example.com"})
    state = apply_changes(None, [root(10), comment(11), cc], chunker, nobody_forgotten).state
    scrubbed = forget_in_state(state, {"email:cc@example.com"})
    assert scrubbed.visible and scrubbed.chunk_ids() == state.chunk_ids()
    assert scrubbed.parts["people"].subjects == ["email:owner@example.com"]
    assert "email:cc@example.com" not in scrubbed.subjects

    # Read again from RT, which still lists them: they stay out, the owner stays in.
    again = apply_changes(
        scrubbed,
        [people(14, {"email:cc@example.com", "email:owner@example.com"})],
        chunker,
        forgetting("email:cc@example.com"),
    )
    assert again.state.visible and again.state.parts["people"].subjects == ["email:owner@example.com"]
    assert again.state.parts["people"].content_hash == ""  # the row names more than the index holds
