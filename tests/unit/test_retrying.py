"""The one retry policy of both lanes (streams/retrying.py): transient waits, the rest gives up."""

from __future__ import annotations

import pytest

from streams.errors import IndexingError, RetryableError
from streams.retrying import retry_transient


class Flaky:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def test_transient_failures_are_retried_until_they_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asyncio.sleep", _no_sleep)
    attempt = Flaky(*(RetryableError("cluster away") for _ in range(7)))
    assert await retry_transient(attempt, stage="index", what="test") == "done"
    assert attempt.calls == 8


async def test_a_permanent_failure_is_raised_at_once_by_default() -> None:
    attempt = Flaky(IndexingError("rejected"))
    with pytest.raises(IndexingError):
        await retry_transient(attempt, stage="index", what="test")
    assert attempt.calls == 1


async def test_permanent_failures_get_a_few_attempts_then_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asyncio.sleep", _no_sleep)
    attempt = Flaky(IndexingError("1"), RetryableError("away"), IndexingError("2"), IndexingError("3"))
    with pytest.raises(IndexingError, match="3"):
        await retry_transient(attempt, stage="forget", what="test", permanent_attempts=3)
    assert attempt.calls == 4  # the outage in between does not count against the request


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_a_lambda_returning_a_coroutine_is_awaited() -> None:
    attempt = Flaky()
    assert await retry_transient(lambda: attempt(), stage="index", what="test") == "done"
