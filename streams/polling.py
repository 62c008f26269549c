"""Waiting for a condition with a deadline: the one polling loop the commands, the stack, the bench and
the tests share, built on tenacity.

A check returns a truthy value when the wait is over; an exception from it ends the wait at once
(a server that exited, a connector that FAILED), since those will not get better by asking again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, stop_never, wait_fixed

T = TypeVar("T")


def _last_result(state: RetryCallState) -> object:
    assert state.outcome is not None  # called only after an attempt
    return state.outcome.result()


def poll(check: Callable[[], T], timeout_s: float | None, interval_s: float = 0.2) -> T:
    """Call `check` every `interval_s` until it returns a truthy value, and return that value; when
    `timeout_s` passes first (None: never), return its last, falsy, value."""
    retrying = Retrying(
        retry=retry_if_result(lambda value: not value),
        wait=wait_fixed(interval_s),
        stop=stop_never if timeout_s is None else stop_after_delay(timeout_s),
        retry_error_callback=_last_result,
    )
    return retrying(check)
