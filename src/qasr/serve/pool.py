"""The server's workers, seen from the parent: start, watch, hand out, replace.

Each worker is a `qasr.processes.Child` running `qasr.serve.worker`; its pipes are the event loop's
own transports (no thread waits on a worker, and a read can be abandoned without losing a line),
carrying `qasr.channel` messages both ways.

* **Watched**: each worker's process is watched (a pidfd in the event loop), so a worker that dies
  while idle (an OOM kill, a native abort) is noticed at once, counted
  (``restarts["died"]``) and replaced: a request is never handed to a dead worker.
* **Handed out** through `qasr.serve.lease.Lease` only: an idle worker, or a place in a bounded
  queue (`QueueFull` beyond it).
* **Replaced** after a request when its RSS passed ``max_worker_rss`` or it served
  ``max_requests`` (its stdin closed, so it exits: a model leaves memory by its process ending,
  since destroying it aborts upstream), or when it did not stop within a second of an abort
  (``stuck``, killed). A replacement that cannot start is retried with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qasr.channel import ERROR, Message, encode, receive_async
from qasr.processes import Child
from qasr.serve.control import PARENT_ENV
from qasr.spec import EngineSpec

READY_TIMEOUT = 120.0
#: The longest message line a worker may send (a result with word times for hours of audio).
LINE_LIMIT = 256 * 1024 * 1024
#: Pauses between attempts to start a replacement that failed to start.
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


def _say(line: str) -> None:
    """One line for the operator on stderr (where `qasr serve` says everything it has to say)."""
    print(f"qasr serve: {line}", file=sys.stderr, flush=True)


class QueueFull(Exception):
    """Every worker is busy and the queue holds as many requests as it may."""


class WorkerDied(Exception):
    """The worker ended while it held a request (a native abort, a kill)."""


class WorkerFailed(Exception):
    """A worker could not load its model: the server cannot serve. ``exit_code`` as qasr's errors."""

    def __init__(self, message: str, exit_code: int = 4) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class PoolOptions:
    spec: EngineSpec  # what `qasr.serve.worker` loads, sent to each worker as JSON
    workers: int = 1
    queue: int = 16
    max_worker_rss: int | None = None
    max_requests: int | None = None


@dataclass(eq=False)
class Worker:
    child: Child
    index: int
    pid: int = 0
    served: int = 0
    rss: int = 0
    load_seconds: float = 0.0
    ready: bool = False
    #: Set with how the process ended ("killed by SIGKILL (signal 9)") once it did.
    exited: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    #: Why the pool let it go (rss, requests, stuck, failed); None while it serves.
    retired: str | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.WriteTransport | None = None

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def send(self, kind: str, payload: bytes | None = None, **fields: Any) -> None:
        """Queue one message for the worker (`qasr.channel`; the loop's pipe transport writes it, never blocking)."""
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(encode(kind, fields, payload))

    async def receive(self) -> Message | None:
        """The worker's next message; None once its output ended (it exited)."""
        assert self.reader is not None
        return await receive_async(self.reader)


@dataclass
class PoolStats:
    restarts: dict[str, int] = field(default_factory=dict)  # reason -> count
    served: int = 0


class WorkerPool:
    """N workers, the idle ones and the requests waiting for one, and the rules for replacing them."""

    def __init__(self, options: PoolOptions) -> None:
        self.options = options
        self.stats = PoolStats()
        self.workers: dict[int, Worker] = {}
        self._idle: deque[Worker] = deque()
        self._waiters: deque[asyncio.Future[Worker]] = deque()
        self._next = 0
        self._logs = tempfile.TemporaryDirectory(prefix="qasr-serve-")
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self.fatal: str | None = None
        self.fatal_code = 4
        self.provider: str | None = None  # what the workers run, as their first ready line says

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in self._waiters)

    @property
    def ready(self) -> bool:
        return any(w.ready and w.alive for w in self.workers.values())

    @property
    def busy(self) -> int:
        """Workers serving a request now."""
        return sum(w.ready and w.alive and w not in self._idle for w in self.workers.values())

    @property
    def full(self) -> bool:
        """No idle worker and the queue is full: a new request would get `QueueFull`."""
        return not self._idle and self.waiting >= self.options.queue

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self.options.workers)))
        if not self.ready:
            raise WorkerFailed(self.fatal or "no worker could start", self.fatal_code)

    # -- starting and watching ------------------------------------------------------------

    async def _spawn(self) -> Worker | None:
        """Start one worker and wait for its model to load; None (and ``fatal`` says why) if it cannot.

        Runs in the event loop's thread, which lives as long as the server: the worker's death signal
        follows the thread that forked it (`qasr.serve.control.watch_parent`).
        """
        index = self._next
        self._next += 1
        log = Path(self._logs.name) / f"worker-{index}.log"
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        child = Child("qasr.serve.worker", [self.options.spec.to_json()], log=log, env=env, stdout="pipe", stdin=True, text=False)
        worker = Worker(child, index, child.pid)
        self.workers[index] = worker
        await self._attach(worker)
        try:
            message = await asyncio.wait_for(worker.receive(), READY_TIMEOUT)
        except (TimeoutError, ValueError):
            message = None
        if message is None or message.kind != "ready":
            self._let_go(worker, "failed", kill=True)
            await self._ended(worker)
            tail = child.stderr_tail(1)
            said = message.error() if message is not None and message.kind == ERROR else None
            self.fatal = str(said) if said else (tail[-1] if tail else f"the worker ended ({child.exit_reason()})")
            self.fatal_code = said.exit_code if said else 4
            return None
        worker.ready, worker.load_seconds = True, float(message.get("load_seconds") or 0.0)
        self.provider = message.get("provider") or self.provider
        self._offer(worker)
        return worker

    async def _attach(self, worker: Worker) -> None:
        """The worker's pipes as transports of the loop, and its process under watch."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), worker.child.stdout)
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, worker.child.stdin)
        worker.reader, worker.writer = reader, writer  # they own the pipes now
        try:
            pidfd = os.pidfd_open(worker.pid)
        except (AttributeError, OSError):  # no pidfd (not Linux >= 5.3): a thread waits instead
            def wait() -> None:
                worker.child.wait()
                loop.call_soon_threadsafe(self._exited, worker)

            threading.Thread(target=wait, name=f"qasr-watch-{worker.pid}", daemon=True).start()
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._exited(worker)

        loop.add_reader(pidfd, readable)

    def _exited(self, worker: Worker) -> None:
        """Its process ended. An unplanned end of a serving worker is a death: counted and replaced."""
        worker.child.poll()  # reap it
        if worker.exited.done():
            return
        worker.exited.set_result(worker.child.exit_reason())
        with contextlib.suppress(OSError):  # its own children (VAD, aligner) in its process group
            os.killpg(worker.pid, signal.SIGKILL)  # (a pid stays unused while its group has members)
        if worker.writer is not None:
            worker.writer.close()
        if worker in self._idle:
            self._idle.remove(worker)
        if worker.retired or self._closing or not worker.ready:
            return  # let go on purpose, or still starting (its `_spawn` reports that)
        self.workers.pop(worker.index, None)
        self.stats.restarts["died"] = self.stats.restarts.get("died", 0) + 1
        _say(f"worker {worker.index} (pid {worker.pid}) ended ({worker.exited.result()}); starting a replacement")
        self._background(self._replacement())

    async def _replacement(self) -> None:
        for attempt in range(10**9):
            if self._closing:
                return
            if await self._spawn() is not None:
                return
            pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            _say(f"a replacement worker could not start ({self.fatal}); trying again in {pause:g} s")
            await asyncio.sleep(pause)  # a pause between attempts, not an ordering

    def _background(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- handing out and taking back ---------------------------------------------------------

    def _offer(self, worker: Worker) -> None:
        """A ready, unleased worker: to the first request waiting, else to the idle ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    async def acquire(self) -> Worker:
        """An idle live worker, or wait in the queue for one; `QueueFull` when the queue is full.

        Cancelling the wait leaves the queue, and a worker handed over at that moment goes back.
        """
        while self._idle:
            worker = self._idle.popleft()
            if worker.alive:
                return worker
        if self.waiting >= self.options.queue:
            raise QueueFull()
        waiter: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._offer(waiter.result())
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def put_back(self, worker: Worker) -> None:
        """A worker handed out but never used (its request went away first)."""
        if worker.alive and not worker.retired:
            self._offer(worker)

    def release(self, worker: Worker) -> None:
        """Back to work after a request, or retired and replaced when it grew too big or served enough."""
        import psutil

        if not worker.alive or worker.retired:
            return
        worker.served += 1
        self.stats.served += 1
        try:
            worker.rss = psutil.Process(worker.pid).memory_info().rss
        except psutil.Error:
            worker.rss = 0
        o = self.options
        if o.max_worker_rss is not None and worker.rss > o.max_worker_rss:
            self.retire(worker, "rss")
        elif o.max_requests is not None and worker.served >= o.max_requests:
            self.retire(worker, "requests")
        else:
            self._offer(worker)

    def retire(self, worker: Worker, reason: str, *, kill: bool = False) -> None:
        """Let ``worker`` go (counted under ``reason``) and start its replacement."""
        if worker.retired:
            return
        self.stats.restarts[reason] = self.stats.restarts.get(reason, 0) + 1
        self._let_go(worker, reason, kill=kill)
        self._background(self._ended(worker))
        if not self._closing:
            self._background(self._replacement())

    def _let_go(self, worker: Worker, reason: str, *, kill: bool) -> None:
        worker.retired = reason
        self.workers.pop(worker.index, None)
        if worker in self._idle:
            self._idle.remove(worker)
        if kill and worker.alive:  # not reaped yet, so the pid is still this child's
            if reason == "stuck":
                _say(f"worker {worker.index} (pid {worker.pid}) did not stop when asked; killed, starting a replacement")
            os.kill(worker.pid, signal.SIGKILL)
        if worker.writer is not None:
            worker.writer.close()  # end of stdin: an idle worker exits at once

    async def _ended(self, worker: Worker) -> None:
        """Wait for a worker let go to end (1 s, then SIGTERM, then SIGKILL) and close its output."""
        await asyncio.to_thread(worker.child.stop, wait_first=1.0)
        self._exited(worker)
        if worker.reader is not None:
            worker.reader.feed_eof()

    # -- the end ---------------------------------------------------------------------------

    def kill_all(self) -> None:
        """SIGKILL every worker now (a second Ctrl-C or SIGTERM: no waiting for anything)."""
        self._closing = True
        for worker in list(self.workers.values()):
            if worker.alive:
                try:
                    os.killpg(worker.pid, signal.SIGKILL)  # its own children too
                except OSError:
                    os.kill(worker.pid, signal.SIGKILL)

    async def close(self) -> None:
        """End every worker (end of stdin; a worker still busy is stopped after a second) and wait."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(QueueFull())
        workers = list(self.workers.values())
        for worker in workers:
            self._let_go(worker, "shutdown", kill=False)
        await asyncio.gather(*(self._ended(w) for w in workers), return_exceptions=True)
        self.workers.clear()
        self._logs.cleanup()
