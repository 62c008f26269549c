"""poll: the shared wait-with-deadline."""

from __future__ import annotations

import pytest

from streams.polling import poll


def test_poll_returns_the_first_truthy_value() -> None:
    answers = iter([0, None, "", "ready", "later"])
    assert poll(lambda: next(answers), timeout_s=5, interval_s=0) == "ready"


def test_poll_gives_up_at_the_deadline_with_the_last_value() -> None:
    calls: list[int] = []

    def never() -> int:
        calls.append(1)
        return 0

    assert poll(never, timeout_s=0.05, interval_s=0.01) == 0
    assert len(calls) >= 2


def test_an_exception_from_the_check_ends_the_wait_at_once() -> None:
    calls: list[int] = []

    def broken() -> bool:
        calls.append(1)
        raise RuntimeError("the server exited")

    with pytest.raises(RuntimeError, match="exited"):
        poll(broken, timeout_s=5, interval_s=0)
    assert len(calls) == 1
