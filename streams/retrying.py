"""How both lanes retry: one tenacity policy over the one rule of what is transient (errors.is_transient).

- A transient failure (Elasticsearch or Kafka away, 429, a timeout) is retried with exponential
  backoff for as long as it lasts: nothing is acknowledged meanwhile, so nothing is lost.
- Any other failure is retried `permanent_attempts - 1` more times (a concurrent write can make one
  attempt fail), then raised: the caller dead-letters it, so it cannot block what comes behind it.
  With `permanent_attempts=1` it is raised at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from streams.errors import is_transient
from streams.observability import metrics

T = TypeVar("T")
log = logging.getLogger(__name__)


async def retry_transient(
    attempt: Callable[[], Awaitable[T]],
    *,
    stage: str,
    what: str,
    permanent_attempts: int = 1,
    max_backoff_s: float = 10.0,
) -> T:
    permanent_failures = 0

    def should_retry(exc: BaseException) -> bool:
        nonlocal permanent_failures
        if is_transient(exc):
            return True
        permanent_failures += 1
        return permanent_failures < permanent_attempts

    def before_sleep(state: RetryCallState) -> None:
        metrics.RETRIES.labels(stage=stage).inc()
        exc = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s failed, retrying in %.1fs: %s", what, wait_s, exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception(should_retry),
        wait=wait_exponential(multiplier=0.25, max=max_backoff_s),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def call() -> T:  # tenacity awaits only what it sees as a coroutine function (not a lambda)
        return await attempt()

    return await retrying(call)
