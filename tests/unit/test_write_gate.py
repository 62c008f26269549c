"""The write gate (agents/write_gate.py): batches write side by side unless they share a document, and
a deletion request holds it whole, after the batches in flight and before those that come after."""

from __future__ import annotations

import asyncio

from streams.agents.write_gate import WriteGate


def test_batches_of_other_documents_write_side_by_side() -> None:
    async def scenario() -> list[str]:
        gate, order = WriteGate(), []
        inside = asyncio.Event()

        async def live() -> None:
            async with gate.batch(["wiki/page/1"]):
                order.append("live in")
                inside.set()
                await asyncio.sleep(0.05)
                order.append("live out")

        async def backfill() -> None:
            await inside.wait()
            async with gate.batch(["wiki/page/2", "wiki/page/3"]):
                order.append("backfill in")

        await asyncio.wait_for(asyncio.gather(live(), backfill()), timeout=5)
        return order

    assert asyncio.run(scenario()) == ["live in", "backfill in", "live out"]


def test_a_batch_that_shares_a_document_waits_for_the_one_writing_it() -> None:
    async def scenario() -> list[str]:
        gate, order = WriteGate(), []
        inside = asyncio.Event()

        async def first() -> None:
            async with gate.batch(["wiki/page/1", "wiki/page/2"]):
                inside.set()
                await asyncio.sleep(0.05)
                order.append("first written")

        async def second() -> None:
            await inside.wait()
            async with gate.batch(["wiki/page/2"]):
                order.append("second in")

        await asyncio.wait_for(asyncio.gather(first(), second()), timeout=5)
        return order

    assert asyncio.run(scenario()) == ["first written", "second in"]


def test_a_request_waits_for_batches_in_flight_and_goes_before_those_after_it() -> None:
    async def scenario() -> list[str]:
        gate, order = WriteGate(), []
        inside, asked = asyncio.Event(), asyncio.Event()

        async def in_flight() -> None:
            async with gate.batch(["wiki/page/1"]):
                inside.set()
                await asked.wait()
                await asyncio.sleep(0.02)
                order.append("in flight written")

        async def request() -> None:
            await inside.wait()
            asked.set()
            async with gate.exclusive():
                assert gate.locked()
                order.append("request holds it")
                await asyncio.sleep(0.02)
            assert not gate.locked()

        async def after() -> None:
            await asked.wait()
            await asyncio.sleep(0)  # the request is waiting now
            async with gate.batch(["wiki/page/9"]):  # another document, and still it waits
                order.append("later batch in")

        await asyncio.wait_for(asyncio.gather(in_flight(), request(), after()), timeout=5)
        return order

    assert asyncio.run(scenario()) == ["in flight written", "request holds it", "later batch in"]


def test_a_request_cancelled_while_it_waits_does_not_keep_batches_out() -> None:
    async def scenario() -> bool:
        gate = WriteGate()
        inside, release = asyncio.Event(), asyncio.Event()

        async def in_flight() -> None:
            async with gate.batch(["wiki/page/1"]):
                inside.set()
                await release.wait()

        async def request() -> None:
            async with gate.exclusive():
                raise AssertionError("a cancelled request must never hold the gate")

        batch = asyncio.create_task(in_flight())
        await inside.wait()
        asking = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
        async with gate.batch(["wiki/page/2"]):  # would wait for ever behind the cancelled request
            entered = True
        release.set()
        await batch
        async with gate.exclusive():  # and the gate can be held whole again
            pass
        return entered

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=5))
