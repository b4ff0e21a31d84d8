"""`qasr.serve.lease` in one process, with a stand-in pool and worker: the races a server cannot
stage on demand (a worker handed over just as its request leaves, a read cut short by a cancel)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qasr.channel import Message
from qasr.errors import Aborted, to_record
from qasr.serve.lease import ABORT_GRACE, Cancel, Cancelled, Inflight, Lease
from qasr.serve.pool import QueueFull


class FakeWorker:
    """Answers come from a queue the test fills; what the lease sends is recorded."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.answers: asyncio.Queue[Message | None] = asyncio.Queue()
        self.exited: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def send(self, kind: str, payload: bytes | None = None, **fields: Any) -> None:
        self.sent.append({"kind": kind, **fields})

    async def receive(self) -> Message | None:
        return await self.answers.get()


class FakePool:
    def __init__(self) -> None:
        self.handed: asyncio.Future[FakeWorker] = asyncio.get_running_loop().create_future()
        self.back: list[tuple[str, FakeWorker]] = []

    async def acquire(self) -> FakeWorker:
        return await self.handed

    def put_back(self, worker: FakeWorker) -> None:
        self.back.append(("unused", worker))

    def release(self, worker: FakeWorker) -> None:
        self.back.append(("released", worker))

    def retire(self, worker: FakeWorker, reason: str, *, kill: bool = False) -> None:
        self.back.append((reason, worker))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_request_gone_while_queued_takes_nothing() -> None:
    async def main() -> list[tuple[str, FakeWorker]]:
        pool, cancel = FakePool(), Cancel()
        entering = asyncio.ensure_future(Lease(pool, cancel).__aenter__())  # type: ignore[arg-type]
        await asyncio.sleep(0)  # let it queue
        cancel.set("disconnect")
        with pytest.raises(Cancelled, match="disconnect"):
            await entering
        return pool.back

    assert run(main()) == []


def test_a_worker_handed_over_as_its_request_leaves_goes_back() -> None:
    async def main() -> tuple[list[tuple[str, FakeWorker]], FakeWorker]:
        pool, cancel = FakePool(), Cancel()
        worker = FakeWorker()
        entering = asyncio.ensure_future(Lease(pool, cancel).__aenter__())  # type: ignore[arg-type]
        await asyncio.sleep(0)
        pool.handed.set_result(worker)  # the queue hands it a worker...
        entering.cancel()  # ...in the same turn of the loop as its handler is cancelled
        with pytest.raises(asyncio.CancelledError):
            await entering  # (it ends once the worker is given back)
        return pool.back, worker

    back, worker = run(main())
    assert back == [("unused", worker)]


def test_a_cancelled_read_keeps_its_line_for_the_drain() -> None:
    async def main() -> tuple[list[tuple[str, FakeWorker]], list[dict[str, Any]]]:
        pool, cancel = FakePool(), Cancel()
        worker = FakeWorker()
        pool.handed.set_result(worker)
        async with Lease(pool, cancel) as lease:  # type: ignore[arg-type]
            await lease.start("transcribe", id=7)
            answers = lease.answers()
            worker.answers.put_nowait(Message(kind="delta", id=7, text="a"))
            assert (await answers.__anext__())["text"] == "a"
            reading = asyncio.ensure_future(answers.__anext__())
            await asyncio.sleep(0)
            cancel.set("disconnect")  # the client leaves while the lease waits for the next line
            with pytest.raises(Cancelled, match="disconnect"):
                await reading
            worker.answers.put_nowait(Message(kind="error", id=7, **to_record(Aborted("aborted"))))  # the abort's answer
        return pool.back, worker.sent

    back, sent = run(main())
    assert sent[-1] == {"kind": "abort", "id": 7}
    assert [reason for reason, _ in back] == ["released"]  # its last answer was read: the worker is fine


def test_a_worker_that_ignores_the_abort_is_retired_as_stuck() -> None:
    async def main() -> tuple[list[str], float]:
        pool, cancel = FakePool(), Cancel()
        pool.handed.set_result(FakeWorker())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(Cancelled):
            async with Lease(pool, cancel) as lease:  # type: ignore[arg-type]
                await lease.start("transcribe", id=1)
                cancel.set("shutdown")
                async for _ in lease.answers():
                    pass
        return [reason for reason, _ in pool.back], loop.time() - t0

    reasons, took = run(main())
    assert reasons == ["stuck"] and ABORT_GRACE <= took < ABORT_GRACE + 0.5


def test_queue_full_propagates_and_leaves_nothing_behind() -> None:
    async def main() -> list[tuple[str, FakeWorker]]:
        pool = FakePool()
        pool.handed.set_exception(QueueFull())
        with pytest.raises(QueueFull):
            async with Lease(pool, Cancel()):  # type: ignore[arg-type]
                raise AssertionError("never entered")
        return pool.back

    assert run(main()) == []


def test_inflight_waits_for_the_last_request_then_cancels_the_rest() -> None:
    async def main() -> tuple[bool, bool, str | None]:
        inflight = Inflight()
        with inflight.track():
            pass
        idle = await inflight.wait_idle(0.01)
        stuck = inflight.begin()
        timed_out = not await inflight.wait_idle(0.05)
        inflight.cancel_all("shutdown")
        inflight.end(stuck)
        return idle and await inflight.wait_idle(0.01), timed_out, stuck.reason

    assert run(main()) == (True, True, "shutdown")
