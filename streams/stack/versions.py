"""Every version the local stack runs, defined once. docker-compose.yml and pom.xml must agree with
these (tests/unit/test_docker_compose.py checks both)."""

from __future__ import annotations

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
DEBEZIUM_VERSION = "3.3.0.Final"
ELASTICSEARCH_VERSION = "8.19.4"
POSTGRES_MAJOR = "15"
MARIADB_VERSION = "10.11"  # Debian 12's mariadb-server; docker-compose pins the same minor

DEBEZIUM_PLUGINS = {
    "postgres": f"io.debezium:debezium-connector-postgres:{DEBEZIUM_VERSION}:tar.gz:plugin",
    "mariadb": f"io.debezium:debezium-connector-mariadb:{DEBEZIUM_VERSION}:tar.gz:plugin",
}
ELASTICSEARCH_ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ELASTICSEARCH_VERSION}:zip"

# Official images for docker-compose.yml, at the same versions.
IMAGES = {
    "kafka": f"apache/kafka:{KAFKA_VERSION}",
    "connect": f"quay.io/debezium/connect:{DEBEZIUM_VERSION}",
    "elasticsearch": f"docker.elastic.co/elasticsearch/elasticsearch:{ELASTICSEARCH_VERSION}",
    "postgres": f"postgres:{POSTGRES_MAJOR}",
    "mariadb": f"mariadb:{MARIADB_VERSION}",
}
