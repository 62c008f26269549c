"""Every Prometheus metric the worker exports, defined once, with units in the names.

Freshness is `searchable_at - source commit time`: searchable means a refresh has made the write
visible to search (the worker writes with refresh=wait_for), not merely acknowledged.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

# Resolve 0.1 s to 60 s: the promise is "within seconds", the floor is Elasticsearch's 1 s refresh.
FRESHNESS_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)

FRESHNESS = Histogram(
    "streams_freshness_seconds",
    "Source commit to searchable, per indexed or deleted row; phase=live for streamed changes, "
    "phase=snapshot for snapshot reads (op=r) and changes committed before the worker started",
    ["source", "table", "operation", "phase"],
    buckets=FRESHNESS_BUCKETS,
)
OLDEST_UNINDEXED_AGE = Gauge(
    "streams_oldest_unindexed_event_age_seconds",
    "Age (now - source commit) of the oldest event read but not yet searchable; 0 when idle",
    ["source"],
)
CAPTURE_AGE = Gauge(
    "streams_source_capture_age_seconds",
    "Now minus the source commit time of the newest event received from the source (heartbeats included); "
    "grows without bound when capture stalls anywhere between the source and this worker",
    ["source"],
)
CONSUMER_LAG = Gauge(
    "streams_consumer_lag_messages", "Messages not yet processed, per topic partition", ["topic", "partition"]
)
EVENTS = Counter(
    "streams_events_total",
    "Change events by outcome: applied, stale (older than the index), suppressed (forgotten subject), skipped, "
    "heartbeat (capture health only), failed",
    ["source", "outcome"],
)
CHUNKS_EMBEDDED = Counter("streams_chunks_embedded_total", "Chunks whose text was new and had to be embedded")
CHUNKS_REUSED = Counter(
    "streams_chunks_reused_total", "Chunks whose vector was reused because their text did not change"
)
CHUNKS_DELETED = Counter("streams_chunks_deleted_total", "Chunks removed from the index")
CHUNKS_WRITTEN = Counter(
    "streams_chunks_written_total", "Chunks written to the index (new or changed text, or new document-level fields)"
)
EMBEDDING_SECONDS = Counter("streams_embedding_seconds_total", "Seconds spent in model.encode")
EMBEDDING_THROUGHPUT = Gauge(
    "streams_embedding_throughput_chunks_per_second", "Chunks per second of model time in the last batch"
)
EMBEDDING_BACKEND = Info(
    "streams_embedding_backend",
    "The backend that runs each embedding model: configured (STREAMS_EMBEDDING_BACKEND), backend and device in use"
    " (auto's choice under auto), and why it was chosen",
    ["model"],
)
EMBEDDING_BACKEND_RATE = Gauge(
    "streams_embedding_backend_chunks_per_second",
    "Chunks per second auto's chosen backend encoded on the agreement sample when it was chosen",
    ["model"],
)
EMBEDDING_BACKEND_COSINE = Gauge(
    "streams_embedding_backend_min_cosine",
    "Minimum cosine between auto's chosen backend's vectors and torch float32's on the agreement sample",
    ["model"],
)
QUERY_VECTORS = Counter(
    "streams_query_vectors_total",
    "Search query vectors by outcome: encoded, or cached (a recent identical query)",
    ["outcome"],
)
BACKFILL_YIELDED_SECONDS = Counter(
    "streams_backfill_yielded_seconds_total", "Time the backfill lane waited for live batches to be written"
)
ROUTED = Counter("streams_routed_total", "Changes the router forwarded, by lane (live or backfill)", ["lane"])
STAGE_SECONDS = Histogram(
    "streams_stage_seconds",
    "Where a change's freshness went, by lane: route (source commit to routed: capture, Kafka and the router), "
    "queue (routed to its batch's start: waiting behind earlier batches), write (batch start to searchable)",
    ["lane", "stage"],
    buckets=FRESHNESS_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "streams_batch_seconds", "Wall time to process one batch of change events", buckets=FRESHNESS_BUCKETS
)
PARTS_SKIPPED = Counter(
    "streams_parts_skipped_total", "Parts read through a path and not indexed: not text by their MIME type", ["source"]
)
DEAD_LETTERS = Counter("streams_dead_letters_total", "Events sent to the dead-letter topic", ["stage"])
RETRIES = Counter("streams_retries_total", "Batches retried after a transient failure", ["stage"])
DELETION_SECONDS = Histogram(
    "streams_deletion_request_seconds",
    "Deletion request received to its subject unsearchable",
    buckets=FRESHNESS_BUCKETS,
)
DELETION_PHASE_SECONDS = Counter(
    "streams_deletion_phase_seconds_total",
    "Wall seconds a deletion request spent in each phase (queue, expand, ledger, gate, refresh, scrub, delete, redact, "
    "verify count toward unsearchable_at; tombstone, receipt come after it; scan is the whole dead-letter scan, "
    "which runs beside the index work)",
    ["phase"],
)
DELETION_REQUESTS = Counter("streams_deletion_requests_total", "Deletion requests completed", ["status"])
