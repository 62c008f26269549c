"""The worker's consumer settings keep deletion requests from waiting behind a backlog of changes.

faust hands each polled record to its stream's buffer in turn and waits when that buffer is full,
which would hold up every other topic, the deletion topic included. Once a buffer passes its
high-water mark faust stops fetching those partitions, so a full buffer is only reached when one
poll brings more records than the room left above the mark.
"""

from __future__ import annotations

import faust
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from streams.app import create_app
from streams.settings import Settings


def _buffer(app: faust.App) -> ThrowableQueue:
    return ThrowableQueue(maxsize=app.conf.stream_buffer_maxsize, flow_control=FlowControlEvent())


def test_one_poll_fits_in_the_room_above_the_high_water_mark() -> None:
    app = create_app(Settings())
    buffer = _buffer(app)
    room = buffer.maxsize - buffer.pressure_high_size
    assert app.conf.broker_max_poll_records is not None
    assert app.conf.broker_max_poll_records <= room


def test_a_full_batch_fits_in_the_buffer() -> None:
    settings = Settings()
    assert settings.batch_max_events <= _buffer(create_app(settings)).pressure_high_size


def test_a_fetch_brings_at_most_the_configured_bytes_of_each_partition() -> None:
    """The client hands out what it fetched partition by partition: the deletion topic's record waits
    behind what was fetched of the others, so the worker bounds it (STREAMS_WORKER_FETCH_PARTITION_BYTES)."""
    assert create_app(Settings()).conf.consumer_max_fetch_size == 256 * 1024
    assert create_app(Settings(worker_fetch_partition_bytes=65536)).conf.consumer_max_fetch_size == 65536
