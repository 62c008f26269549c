"""The worker's consumer settings keep live edits and deletion requests from waiting behind a backlog.

faust hands each polled record to its stream's buffer in turn and waits when that buffer is full,
which would hold up every other topic, the deletion topic included. Once a buffer passes its
high-water mark faust stops fetching a partition, but only when a record of that partition arrives:
until then each poll may still bring records of the stream's other partitions. The room above the mark
must hold one poll of each of them.
"""

from __future__ import annotations

import faust
import pytest
from mode.utils.queues import FlowControlEvent, ThrowableQueue
from pydantic import ValidationError

from streams.app import POLL_RECORDS, STREAM_PARTITIONS, create_app
from streams.settings import Settings


def _buffer(app: faust.App) -> ThrowableQueue:
    return ThrowableQueue(maxsize=app.conf.stream_buffer_maxsize, flow_control=FlowControlEvent())


def _fullest(buffer: ThrowableQueue, poll_records: int, partitions: int) -> int:
    """The most records `buffer` holds when nothing takes from it and each poll brings `poll_records`
    records of one partition still fetched (the worst order for it), as faust delivers them: a record
    that arrives while the buffer is past its high-water mark stops its partition's fetching
    (faust's Consumer.on_buffer_full). A full buffer is where faust's delivery would wait."""
    fetched = list(range(partitions))
    while fetched and not buffer.full():
        partition = fetched[0]
        for _ in range(poll_records):
            if buffer.full():
                break
            if buffer.put_nowait_enhanced(None, on_pressure_high=lambda: None, on_pressure_drop=lambda: None):
                if partition in fetched:
                    fetched.remove(partition)
    return buffer.qsize()


def test_the_room_above_the_high_water_mark_holds_a_poll_of_every_partition() -> None:
    app = create_app(Settings())
    assert app.conf.broker_max_poll_records == POLL_RECORDS
    room = _buffer(app).maxsize - _buffer(app).pressure_high_size
    assert POLL_RECORDS * (STREAM_PARTITIONS + 1) <= room


def test_no_buffer_fills_while_its_partitions_keep_coming() -> None:
    """The lanes' streams read `document_partitions` partitions (the router reads through a consumer of
    its own, agents/router_consumer.py)."""
    settings = Settings()
    for partitions in (1, settings.document_partitions, STREAM_PARTITIONS):
        buffer = _buffer(create_app(settings))
        assert _fullest(buffer, POLL_RECORDS, partitions) < buffer.maxsize, partitions


def test_the_check_finds_a_buffer_that_fills() -> None:
    """Polls of a whole batch (256) into a buffer of 8 batches: the first partition fills it to the mark,
    the second's poll to the brim. So a bulk import's backlog in the backfill lane's buffer held the
    live lane for seconds."""
    buffer = ThrowableQueue(maxsize=2048, flow_control=FlowControlEvent())
    assert _fullest(buffer, 256, Settings().document_partitions) == buffer.maxsize


def test_a_full_batch_fits_in_the_buffer() -> None:
    settings = Settings()
    assert settings.batch_max_events <= _buffer(create_app(settings)).pressure_high_size


def test_a_fetch_brings_at_most_the_configured_bytes_of_each_partition() -> None:
    """The client hands out what it fetched partition by partition: the deletion topic's record waits
    behind what was fetched of the others, so the worker bounds it (STREAMS_WORKER_FETCH_PARTITION_BYTES)."""
    assert create_app(Settings()).conf.consumer_max_fetch_size == 256 * 1024
    assert create_app(Settings(worker_fetch_partition_bytes=65536)).conf.consumer_max_fetch_size == 65536


def test_more_document_partitions_than_a_stream_buffer_holds_are_refused() -> None:
    # The check can fail: the most partitions the buffers are sized for is accepted, one more is not.
    assert Settings(document_partitions=STREAM_PARTITIONS).document_partitions == STREAM_PARTITIONS
    with pytest.raises(ValidationError, match=f"between 1 and {STREAM_PARTITIONS}"):
        Settings(document_partitions=STREAM_PARTITIONS + 1)
    with pytest.raises(ValidationError):
        Settings(document_partitions=0)
