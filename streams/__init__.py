"""streams: an event-driven streaming index updater (Debezium -> Kafka -> faust -> Elasticsearch)."""

__version__ = "0.1.0"
