"""One use of a worker, from taking it to giving it back, whatever happens in between.

Every route uses a worker the same way::

    async with Lease(pool, cancel) as lease:                # waits in the queue; QueueFull beyond it
        async for answer in lease.request(kind, **fields):   # WorkerDied if it ends; Cancelled if `cancel` fires
            ...

Leaving the block, however it is left (a result, a client gone, a shutdown, an exception, the task
cancelled under it), gives the worker back: a request still running is aborted (the engine's abort,
through the worker's control thread) and its last answer awaited for at most `ABORT_GRACE` seconds;
a worker that does not stop in that time is killed and replaced (``stuck``). So a client that goes
away at any stage frees its worker within about a second of the server noticing.

`Cancel` is what stops a request early (its client went away, or the server is shutting down), and
`Inflight` is the set of requests in progress, which a shutdown waits for and then cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from qasr.channel import ERROR, Message
from qasr.serve.pool import WorkerDied, WorkerPool, Worker

#: How long a request that was asked to stop may take to answer before its worker is killed.
ABORT_GRACE = 1.0
#: The kinds of a request's last answer (`qasr.serve.worker`).
FINAL = ("result", ERROR, "done")


class Cancelled(Exception):
    """The request was stopped early; ``reason`` is ``disconnect`` or ``shutdown``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Cancel:
    """Set once, with why, when a request must stop early."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = asyncio.Event()

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self.reason is not None

    async def wait(self) -> None:
        await self._event.wait()


class Inflight:
    """Requests in progress (uploads included): a shutdown waits for none to remain, then cancels the rest."""

    def __init__(self) -> None:
        self._cancels: set[Cancel] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._cancels)

    def begin(self) -> Cancel:
        cancel = Cancel()
        self._cancels.add(cancel)
        self._idle.clear()
        return cancel

    def end(self, cancel: Cancel) -> None:
        self._cancels.discard(cancel)
        if not self._cancels:
            self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[Cancel]:
        cancel = self.begin()
        try:
            yield cancel
        finally:
            self.end(cancel)

    async def wait_idle(self, seconds: float) -> bool:
        """True once no request is in progress; False if some still are after ``seconds``."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
            return True
        except TimeoutError:
            return False

    def cancel_all(self, reason: str) -> None:
        for cancel in list(self._cancels):
            cancel.set(reason)


class Lease:
    """``async with Lease(pool, cancel)``: one worker, given back in every case (see the module doc)."""

    def __init__(self, pool: WorkerPool, cancel: Cancel | None = None) -> None:
        self.pool, self.cancel = pool, cancel
        self.worker: Worker | None = None
        self.pending: int | None = None  # the request sent whose last answer has not come yet
        self._reading: asyncio.Future[Message | None] | None = None
        self._acquiring: asyncio.Future[Worker] | None = None
        self._cancelled: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Lease:
        self._acquiring = asyncio.ensure_future(self.pool.acquire())
        try:
            await self._race(self._acquiring)
            self.worker, self._acquiring = self._acquiring.result(), None  # QueueFull raises here
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        import anyio

        ending = asyncio.ensure_future(self._give_back())
        with anyio.CancelScope(shield=True):  # a cancelled handler (a client gone) must still give it back
            await asyncio.shield(ending)

    async def _race(self, task: asyncio.Future[Any]) -> None:
        """Wait for ``task``; `Cancelled` if the request's cancel fires first (``task`` is left as it is)."""
        if self.cancel is None:
            await asyncio.shield(task)
            return
        if self._cancelled is None:
            self._cancelled = asyncio.ensure_future(self.cancel.wait())
        await asyncio.wait({task, self._cancelled}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            raise Cancelled(self.cancel.reason or "cancelled")

    async def _next(self) -> Message | None:
        """The worker's next answer; the read outlives a cancelled wait, so no line is ever lost."""
        assert self.worker is not None
        if self._reading is None:
            self._reading = asyncio.ensure_future(self.worker.receive())
        await self._race(self._reading)
        answer, self._reading = self._reading.result(), None
        return answer

    async def request(self, kind: str, **fields: Any) -> AsyncIterator[Message]:
        """Send one request and yield its answers, the last one included (see `qasr.serve.worker`)."""
        await self.start(kind, **fields)
        async for answer in self.answers():
            yield answer

    async def start(self, kind: str, **fields: Any) -> None:
        """Send one request, ``fields`` with its ``id`` (`WorkerDied` at once if the worker is already
        gone: nothing was sent)."""
        worker = self.worker
        assert worker is not None and self.pending is None
        if not worker.alive:
            raise await self._death(worker)
        self.pending = int(fields["id"])
        worker.send(kind, **fields)

    async def answers(self) -> AsyncIterator[Message]:
        """The running request's answers up to its last (`WorkerDied` if the worker ends first)."""
        worker = self.worker
        assert worker is not None
        while self.pending is not None:
            answer = await self._next()
            if answer is None:
                self.pending = None
                raise await self._death(worker)
            if answer.get("id") != self.pending:
                continue  # not this request's (cannot happen while every request is drained)
            if answer.get("kind") in FINAL:
                self.pending = None
            yield answer

    def send(self, kind: str, payload: bytes | None = None, **fields: Any) -> None:
        """One more message for the running request (a live stream's audio, its end)."""
        if self.worker is not None:
            self.worker.send(kind, payload, **fields)

    async def _death(self, worker: Worker) -> WorkerDied:
        try:
            reason = await asyncio.wait_for(asyncio.shield(worker.exited), 5.0)
        except TimeoutError:  # its output ended but it lives on: it cannot serve anyway
            self.pool.retire(worker, "stuck", kill=True)
            reason = "it closed its output"
        tail = worker.child.stderr_tail(1)
        self.worker = None
        return WorkerDied(f"the worker process ended ({reason}) while handling the request" + (f": {tail[-1]}" if tail else ""))

    async def _give_back(self) -> None:
        if self._cancelled is not None:
            self._cancelled.cancel()
        if self._acquiring is not None:  # left while queued: leave the queue
            self._acquiring.cancel()
            try:
                unused = await self._acquiring
            except BaseException:  # noqa: BLE001 - cancelled in the queue, or QueueFull: nothing was taken
                return
            self.pool.put_back(unused)  # handed over just as we left
            return
        worker = self.worker
        if worker is None:
            return
        self.worker = None
        if self.pending is not None and worker.alive:
            worker.send("abort", id=self.pending)
            if not await self._drain(worker):
                self.pool.retire(worker, "stuck", kill=True)
                return
        if self.pending is None:
            self.pool.release(worker)

    async def _drain(self, worker: Worker) -> bool:
        """Read the aborted request's answers up to its last; False if that takes over `ABORT_GRACE`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ABORT_GRACE
        try:
            while self.pending is not None:
                if self._reading is None:
                    self._reading = asyncio.ensure_future(worker.receive())
                answer = await asyncio.wait_for(asyncio.shield(self._reading), max(0.0, deadline - loop.time()))
                self._reading = None
                if answer is None:
                    return True  # it died meanwhile: the pool's watch counts and replaces it
                if answer.get("id") == self.pending and answer.get("kind") in FINAL:
                    self.pending = None
            return True
        except TimeoutError:
            if self._reading is not None:
                self._reading.cancel()
            return False
