"""The connectors' mapping files, loaded strictly and applied to decoded change events."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.errors import MappingError
from streams.pipeline.chunk_document import chunk_text
from streams.pipeline.decode_change_event import decode_change_event
from streams.pipeline.document_mapping import Mappings, load_mappings, parse_source_mapping
from streams.records import ChangeEvent, Op, PartChange

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "connectors"
HANDMADE = Path(__file__).parent / "fixtures" / "handmade"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(CONNECTORS)


def event(name: str) -> ChangeEvent:
    fixture = json.loads((HANDMADE / f"{name}.json").read_text())
    decoded = decode_change_event(
        fixture["topic"], json.dumps(fixture["key"]).encode(), json.dumps(fixture["value"]).encode()
    )
    assert decoded is not None
    return decoded


def part(mappings: Mappings, name: str) -> PartChange:
    change = mappings.part_change(event(name))
    assert change is not None
    return change


def sql_columns(source: str) -> dict[str, set[str]]:
    """Column names per table of streams/sources/<source>.sql, read just well enough for this check."""
    sql = (ROOT / "streams" / "sources" / f"{source}.sql").read_text()
    tables = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS `?(\w+)`? \((.*?)\n\)", sql, re.S):
        words = (line.strip().split()[0].strip("`") for line in body.splitlines() if line.strip())
        tables[name] = {w for w in words if w.upper() not in {"PRIMARY", "KEY", "UNIQUE", "CONSTRAINT"}}
    return tables


def test_every_mapped_column_exists_in_the_source_schema(mappings: Mappings) -> None:
    for source in mappings.sources:
        schema = sql_columns(source.source)
        for document in source.documents:
            assert document.columns() <= schema[document.table], document.table
            for child in document.children:
                assert child.columns() <= schema[child.table], child.table


def test_ticket_row_becomes_the_root_part(mappings: Mappings) -> None:
    change = part(mappings, "tickets.public.tickets/create")
    assert (change.document_id, change.part_id, change.role) == ("tickets/ticket/42", "root", "root")
    assert change.title == "VPN drops every 10 minutes"
    assert change.text.startswith("Since the update") and change.text_format == "plain"
    assert change.subjects == {"email:alice.smith@example.com"}  # lower-cased, stripped, empty skipped
    assert change.groups == ("support", "network")
    assert change.metadata == {
        "status": "open",
        "priority": "high",
        "product": "vpn",
        "created_at": "2025-10-31T08:40:00.123456Z",
    }
    assert change.link == "https://tickets.example.com/agent/tickets/42"
    assert (change.deleted, change.identity, change.version) == (False, False, 24024232)


def test_comment_is_a_part_of_its_ticket(mappings: Mappings) -> None:
    change = part(mappings, "tickets.public.ticket_comments/create")
    assert (change.document_id, change.part_id, change.role) == (
        "tickets/ticket/42",
        "ticket_comments/17",
        "child",
    )
    assert change.text == "Please try the 5.2 client." and change.text_format == "email"  # a reply
    assert change.subjects == {"email:bob@example.com"}
    assert change.title is None and change.groups is None and change.order_key is None


def test_deleted_comment_uses_the_before_image(mappings: Mappings) -> None:
    change = part(mappings, "tickets.public.ticket_comments/delete")
    assert change.deleted and change.document_id == "tickets/ticket/42" and change.part_id == "ticket_comments/17"
    assert change.text == "Please try the 5.2 client."


def test_contact_uses_templates_and_is_an_identity(mappings: Mappings) -> None:
    change = part(mappings, "crm.public.contacts/snapshot")
    assert change.document_id == "crm/contact/5" and change.title == "Carla Diaz"
    assert change.text == "Carla Diaz, CTO. Email carla.diaz@example.org, phone +1 555 0100. Stage: customer."
    assert change.subjects == {"email:carla.diaz@example.org", "contact_id:5"}
    assert change.identity and change.groups == ("sales", "success")
    assert change.metadata == {"lifecycle_stage": "customer", "account_id": 3}


def test_note_names_its_contact_and_author(mappings: Mappings) -> None:
    change = part(mappings, "crm.public.notes/create")
    assert change.document_id == "crm/note/9" and change.title == "Renewal call"
    assert change.subjects == {"contact_id:5", "email:dan@example.com"}
    assert not change.identity


def test_wiki_page_splits_restrictions_into_groups(mappings: Mappings) -> None:
    change = part(mappings, "wiki.wiki.page/create")
    assert change.document_id == "wiki/page/3" and change.title == "VPN_setup"
    assert change.groups == ("staff", "it") and change.text == ""
    assert change.link == "https://wiki.example.com/index.php?curid=3"


def test_revision_is_the_latest_text_of_its_page(mappings: Mappings) -> None:
    change = part(mappings, "wiki.wiki.revision/create")
    assert (change.document_id, change.part_id, change.order_key) == ("wiki/page/3", "revision", 11)
    assert change.text_format == "wikitext" and "== Install ==" in change.text
    assert change.subjects == {"email:erin@example.com"}


def test_wiki_page_delete_is_a_deleted_root(mappings: Mappings) -> None:
    change = part(mappings, "wiki.wiki.page/delete")
    assert change.deleted and change.part_id == "root" and change.groups == ("staff", "it")


@pytest.mark.parametrize(
    ("source", "table"),
    [
        ("wiki", "user"),
        ("crm", "accounts"),
        ("tickets", "groups"),
        ("tickets", "users"),
        ("elsewhere", "tickets"),
    ],
)
def test_unmapped_tables_give_none(mappings: Mappings, source: str, table: str) -> None:
    unmapped = replace(event("tickets.public.tickets/create"), source=source, table=table)
    assert mappings.part_change(unmapped) is None


def test_empty_groups_and_missing_parent(mappings: Mappings) -> None:
    page = event("wiki.wiki.page/create")
    open_page = replace(page, after={**(page.after or {}), "page_restrictions": " , "})
    assert part_of(mappings, open_page).groups == ()
    comment = event("tickets.public.ticket_comments/create")
    orphan = replace(comment, after={**(comment.after or {}), "ticket_id": None})
    with pytest.raises(MappingError, match="no parent"):
        mappings.part_change(orphan)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"restricted": "staff", "namespace": "0", "extra": "auditors"}, ("restricted:staff", "extra:auditors")),
        ({"restricted": None, "namespace": "0", "extra": "auditors"}, ("namespace:0", "extra:auditors")),
        ({"restricted": None, "namespace": None, "extra": None}, ()),
        ({"restricted": None, "namespace": None, "extra": "auditors"}, ("extra:auditors",)),
    ],
)
def test_groups_marked_also_are_added_whichever_alternative_gives_the_rest(
    row: dict[str, Any], expected: tuple[str, ...]
) -> None:
    from streams.pipeline.document_mapping import Groups, document_groups

    groups = (
        Groups(column="extra", prefix="extra:", also=True),  # listed first: still no alternative
        Groups(column="restricted", prefix="restricted:"),
        Groups(column="namespace", prefix="namespace:"),
    )
    assert document_groups(groups, [row]) == expected


def _path_document(path: list[dict[str, Any]]) -> dict[str, Any]:
    return {"source": "s", "documents": [{"table": "a", "kind": "a", "key": "id", "path": path}]}


def test_a_path_reads_a_table_twice_only_under_a_second_name() -> None:
    twice = [
        {"table": "acl", "join": {"column": "objectid", "to": "a.queue"}},
        {"table": "acl", "join": {"column": "objectid", "value": 1}},
    ]
    with pytest.raises(MappingError, match=r"acl appears twice on one path \(name a second hop on a table with as:\)"):
        parse_source_mapping(_path_document(twice))
    named = [twice[0], {**twice[1], "as": "system_acl"}, {"table": "g", "join": {"column": "id", "to": "system_acl.p"}}]
    mapping = parse_source_mapping(_path_document(named))
    assert [hop.ref for hop in mapping.documents[0].path] == ["acl", "system_acl", "g"]


@pytest.mark.parametrize(
    ("join", "message"),
    [
        ({"column": "objectid"}, "needs exactly one of to or value"),
        ({"column": "objectid", "to": "a.queue", "value": 1}, "needs exactly one of to or value"),
        ({"column": "objectid", "value": 1, "prefix": "tt:"}, "a join on a constant value takes no prefix"),
    ],
)
def test_a_join_is_to_an_earlier_column_or_to_a_constant(join: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_source_mapping(_path_document([{"table": "acl", "join": join}]))


def test_a_deleted_row_matches_a_constant_join_only_with_its_value() -> None:
    mapping = parse_source_mapping(
        _path_document([{"table": "acl", "join": {"column": "objectid", "value": 1}, "where": {"kind": "system"}}])
    )
    (hop,) = mapping.documents[0].path
    assert hop.matches({"objectid": 1, "kind": "system"}) and hop.matches({"objectid": "1"})
    assert not hop.matches({"objectid": 3, "kind": "system"}) and not hop.matches({"objectid": 1, "kind": "queue"})


def part_of(mappings: Mappings, change_event: ChangeEvent) -> PartChange:
    change = mappings.part_change(change_event)
    assert change is not None
    return change


def test_key_comes_from_the_message_key(mappings: Mappings) -> None:
    ticket = replace(event("tickets.public.tickets/create"), key={"id": 7}, op=Op.UPDATE)
    assert part_of(mappings, ticket).document_id == "tickets/ticket/7"


def raw_tickets() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CONNECTORS / "tickets.mapping.yaml").read_text())
    return loaded


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["documents"][0].update(colour="red"), "unknown key"),
        (lambda m: m["documents"][0].pop("key"), "missing key"),
        (lambda m: m["documents"][0]["children"][0].update(mode="first"), "mode"),
        (lambda m: m["documents"][0]["body"].update(format="markdown"), "format"),
        (lambda m: m["documents"][0]["body"].update(template="{description}"), "exactly one"),
        (lambda m: m["documents"][0].update(link="https://x/{id!r}"), "plain column name"),
        (lambda m: m["documents"][0].update(link="https://x/{id"), "not a valid template"),
        (lambda m: m["documents"][0]["subjects"].append({"kind": "email"}), "missing column"),
        (lambda m: m["documents"][0].update(identity="yes"), "identity"),
        (lambda m: m["documents"].append(m["documents"][0]), "mapped twice"),
        (lambda m: m.pop("source"), "missing source"),
    ],
)
def test_bad_mapping_config_raises_mapping_error(change: Any, message: str) -> None:
    raw = raw_tickets()
    change(raw)
    with pytest.raises(MappingError, match=message):
        Mappings((parse_source_mapping(raw),))


def test_bad_file_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "broken.mapping.yaml").write_text("source: x\ndocuments: [{table: t, kind: k}]\n")
    with pytest.raises(MappingError, match=r"broken\.mapping\.yaml: documents\[0\]: missing key"):
        load_mappings(tmp_path)


def test_a_directory_without_mappings_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"no \*\.mapping\.yaml"):
        load_mappings(tmp_path)


CAPTURED = Path(__file__).parent / "fixtures" / "debezium"


def fixture_paths() -> list[Path]:
    return sorted(HANDMADE.glob("*/*.json")) + (sorted(CAPTURED.glob("*/*.json")) if CAPTURED.is_dir() else [])


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_every_fixture_maps_and_chunks(mappings: Mappings, path: Path) -> None:
    fixture = json.loads(path.read_text())
    key, value = (None if obj is None else json.dumps(obj).encode() for obj in (fixture["key"], fixture["value"]))
    decoded = decode_change_event(fixture["topic"], key, value)
    if decoded is None:
        return  # deliberately skipped (tombstone, heartbeat, transaction)
    change = mappings.part_change(decoded)
    if change is not None:
        assert change.document_id.startswith(f"{decoded.source}/")
        chunk_text(change.text, change.text_format)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["documents"][0].update(title="{a!r}"), r"^documents\[0\]\.title: placeholder \{a\}"),
        (lambda m: m["documents"][0].update(link=5), r"^documents\[0\]\.link: must be a string, not int$"),
        (lambda m: m["documents"][0].update(groups="x"), r"^documents\[0\]\.groups: must be a mapping, not str$"),
        (
            lambda m: m["documents"][0]["subjects"].append({"kind": "email"}),
            r"^documents\[0\]\.subjects\[2\]: missing column$",
        ),
        (lambda m: m.update(documents=[]), r"^documents: is empty$"),
        (lambda m: m.update(path="/elsewhere"), r"^mapping file: unknown key\(s\) path$"),
    ],
)
def test_errors_name_the_field_path_and_only_the_real_problem(change: Any, message: str) -> None:
    raw = raw_tickets()
    change(raw)
    with pytest.raises(MappingError, match=message):
        parse_source_mapping(raw)


def test_a_file_that_is_not_a_mapping_says_so() -> None:
    with pytest.raises(MappingError, match=r"^mapping file: must be a mapping, not list$"):
        parse_source_mapping([])


def _captured(mappings: Mappings, name: str) -> PartChange:
    fixture = json.loads((CAPTURED / f"{name}.json").read_text())
    key, value = (json.dumps(fixture[name]).encode() for name in ("key", "value"))
    decoded = decode_change_event(fixture["topic"], key, value)
    assert decoded is not None
    change = mappings.part_change(decoded)
    assert change is not None
    return change


@pytest.mark.parametrize("table", ["tickets.public.tickets", "tickets.public.ticket_comments", "wiki.wiki.revision"])
def test_a_part_knows_whether_a_snapshot_read_it(mappings: Mappings, table: str) -> None:
    # Freshness reports snapshot reads apart from live changes; the flag must survive the mapping.
    assert _captured(mappings, f"{table}/snapshot_read").snapshot is True
    assert _captured(mappings, f"{table}/update").snapshot is False


def test_a_join_takes_prefix_or_column_prefix_not_both() -> None:
    raw: dict[str, Any] = yaml.safe_load((CONNECTORS / "tryton.mapping.yaml").read_text())
    (notes,) = (part for part in raw["documents"][0]["parts"] if part["name"] == "notes")
    notes["path"][0]["join"]["prefix"] = "party.party,"
    with pytest.raises(MappingError, match="prefix or column_prefix, not both"):
        Mappings((parse_source_mapping(raw),))
