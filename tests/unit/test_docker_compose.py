"""docker-compose.yml and the Maven pom run the same versions and ports as the local stack."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import yaml

from streams.settings import PROJECT_ROOT, Settings
from streams.stack import versions

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
POM = ET.parse(PROJECT_ROOT / "streams" / "stack" / "pom.xml")
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _host_ports(service: str) -> set[int]:
    return {int(str(p).split(":")[-2]) for p in COMPOSE["services"][service]["ports"]}


def test_images_match_the_local_stack_versions() -> None:
    images = {name: spec["image"] for name, spec in COMPOSE["services"].items()}
    assert images == versions.IMAGES


def test_pom_resolves_the_same_kafka_and_log4j() -> None:
    assert POM.findtext("m:properties/m:kafka.version", namespaces=NS) == versions.KAFKA_VERSION
    assert POM.findtext("m:properties/m:log4j.version", namespaces=NS) == versions.LOG4J_VERSION


def test_ports_match_the_default_settings() -> None:
    settings = Settings()
    assert int(settings.kafka_bootstrap.rsplit(":", 1)[1]) in _host_ports("kafka")
    assert urlsplit(settings.connect_url).port in _host_ports("connect")
    assert urlsplit(settings.elasticsearch_url).port in _host_ports("elasticsearch")
    assert urlsplit(settings.dsn("tickets")).port in _host_ports("postgres")
    assert urlsplit(settings.dsn("wiki")).port in _host_ports("mariadb")


def test_every_service_has_a_healthcheck() -> None:
    assert all("healthcheck" in spec for spec in COMPOSE["services"].values())


def test_databases_log_changes_for_debezium() -> None:
    postgres = " ".join(COMPOSE["services"]["postgres"]["command"])
    assert "wal_level=logical" in postgres
    mariadb = COMPOSE["services"]["mariadb"]["command"]
    assert {"--binlog-format=ROW", "--binlog-row-image=FULL"} <= set(mariadb)
