"""The schemas and connector definitions are found through streams/resources.py, from a checkout and
from an installed wheel alike, and a setting names another connectors folder."""

from __future__ import annotations

from pathlib import Path

from streams import avro
from streams.pipeline.document_mapping import load_mappings
from streams.resources import connectors_dir, schemas_dir
from streams.settings import Settings
from streams.topics import change_topics


def test_the_shipped_schemas_and_connectors_are_found() -> None:
    assert (schemas_dir() / "deletion_receipt.avsc").is_file()
    assert list((schemas_dir() / "history").glob("*.avsc"))
    shipped = connectors_dir(Settings())
    every = {"crm.json", "tickets.json", "wiki.json", "mediawiki.json", "rt.json", "tryton.json"}
    assert {path.name for path in shipped.glob("*.json")} == every
    assert avro.load_schema("deletion_receipt")["name"].endswith("DeletionReceipt")


def test_the_real_applications_connectors_are_registered_only_where_their_application_runs() -> None:
    from streams.stack import connectors

    assert set(connectors.load(Settings())) == {"crm", "tickets", "wiki"}
    assert set(Settings().sources) == {"crm", "tickets", "wiki"}
    both = Settings(stack_apps=("mediawiki", "request-tracker"))
    rendered = connectors.load(both)
    assert set(rendered) == {"crm", "tickets", "wiki", "mediawiki", "rt"}
    assert rendered["rt"]["database.dbname"] == "rt" and rendered["mediawiki"]["database.include.list"] == "mediawiki"
    assert "mediawiki.text" in rendered["mediawiki"]["table.include.list"].split(",")
    assert set(Settings(stack_apps=("request-tracker",)).sources) == {"crm", "tickets", "wiki", "rt"}
    tryton = connectors.load(Settings(stack_apps=("tryton",)))
    assert set(tryton) == {"crm", "tickets", "wiki", "tryton"}
    assert "public.ir_note" in tryton["tryton"]["table.include.list"].split(",")


def test_a_setting_names_another_connectors_folder(tmp_path: Path) -> None:
    shipped = connectors_dir(Settings())
    for name in ("wiki.json", "wiki.mapping.yaml"):
        (tmp_path / name).write_text((shipped / name).read_text())  # one source of the three
    settings = Settings(connectors_dir=tmp_path)
    assert connectors_dir(settings) == tmp_path
    mappings = load_mappings(connectors_dir(settings))
    assert [source.source for source in mappings.sources] == ["wiki"]
    assert all(topic.startswith("wiki.") for topic in change_topics(mappings, settings))
