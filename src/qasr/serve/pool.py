"""The server's workers, seen from the parent: start, dispatch, watch, replace.

Each worker is a `qasr.processes.Child` running `qasr.serve.worker`. A request takes an idle worker
(waiting in a bounded queue; `QueueFull` when it is full), sends one JSON line and reads answers
until the last one. After each request the worker's RSS is read with psutil: past
``max_worker_rss`` bytes, or after ``max_requests`` requests, it is retired (its stdin closed, so it
exits: a model leaves memory by its process ending, since destroying it aborts upstream) and a new
one starts. A worker that dies mid-request answers that request with `WorkerDied` naming how it
ended, and is replaced; no other request is affected. Blocking pipe reads run in threads, so the
event loop never waits on a worker.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qasr.processes import Child

READY_TIMEOUT = 120.0


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
    spec: dict[str, Any]  # what `qasr.serve.worker` loads: model, aligner, language, threads, ...
    workers: int = 1
    queue: int = 16
    max_worker_rss: int | None = None
    max_requests: int | None = None


@dataclass
class Worker:
    child: Child
    index: int
    pid: int = 0
    served: int = 0
    rss: int = 0
    load_seconds: float = 0.0
    ready: bool = False


@dataclass
class PoolStats:
    restarts: dict[str, int] = field(default_factory=dict)  # reason -> count
    served: int = 0


class WorkerPool:
    """N workers, a queue of idle ones, and the rules for replacing them."""

    def __init__(self, options: PoolOptions) -> None:
        self.options = options
        self.stats = PoolStats()
        self.workers: dict[int, Worker] = {}
        self._idle: asyncio.Queue[Worker] = asyncio.Queue()
        self._waiting = 0
        self._next = 0
        self._logs = tempfile.TemporaryDirectory(prefix="qasr-serve-")
        self.fatal: str | None = None
        self.fatal_code = 4
        self.provider: str | None = None  # what the workers run, as their first ready line says

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def ready(self) -> bool:
        return any(w.ready for w in self.workers.values())

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self.options.workers)))
        if not self.ready:
            raise WorkerFailed(self.fatal or "no worker could start", self.fatal_code)

    async def _spawn(self) -> None:
        index = self._next
        self._next += 1
        log = Path(self._logs.name) / f"worker-{index}.log"
        child = Child("qasr.serve.worker", [json.dumps(self.options.spec)], log=log, stdout="pipe", stdin=True)
        worker = Worker(child, index, child.pid)
        self.workers[index] = worker
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), READY_TIMEOUT)  # type: ignore[union-attr]
        message = json.loads(line) if line.strip().startswith("{") else {"type": "fatal", "message": line.strip()}
        if message.get("type") != "ready":
            child.close()
            del self.workers[index]
            tail = child.stderr_tail(1)
            self.fatal = message.get("message") or (tail[-1] if tail else f"the worker ended ({child.exit_reason()})")
            self.fatal_code = int(message.get("exit_code") or 4)
            return
        worker.ready, worker.load_seconds = True, float(message.get("load_seconds") or 0.0)
        self.provider = message.get("provider") or self.provider
        self._idle.put_nowait(worker)

    async def acquire(self) -> Worker:
        if self._idle.empty() and self._waiting >= self.options.queue:
            raise QueueFull()
        self._waiting += 1
        try:
            return await self._idle.get()
        finally:
            self._waiting -= 1

    async def release(self, worker: Worker) -> None:
        """Back to the idle queue, or retired and replaced when it grew too big or served enough."""
        import psutil

        worker.served += 1
        self.stats.served += 1
        try:
            worker.rss = psutil.Process(worker.pid).memory_info().rss
        except psutil.Error:
            worker.rss = 0
        o = self.options
        reason = None
        if o.max_worker_rss is not None and worker.rss > o.max_worker_rss:
            reason = "rss"
        elif o.max_requests is not None and worker.served >= o.max_requests:
            reason = "requests"
        if reason is None:
            self._idle.put_nowait(worker)
            return
        await self._replace(worker, reason)

    async def _replace(self, worker: Worker, reason: str) -> None:
        self.stats.restarts[reason] = self.stats.restarts.get(reason, 0) + 1
        self.workers.pop(worker.index, None)
        await asyncio.to_thread(worker.child.close)
        await self._spawn()

    async def request(self, message: dict[str, Any], worker: Worker) -> AsyncIterator[dict[str, Any]]:
        """Send one request to ``worker`` and yield its answers, ending with the last one."""
        await self.send(worker, message)
        while True:
            answer = await self.receive(worker)
            yield answer
            if answer.get("type") in ("result", "error", "done"):
                return

    async def send(self, worker: Worker, message: dict[str, Any]) -> None:
        def write() -> None:
            stdin = worker.child.stdin
            assert stdin is not None
            stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
            stdin.flush()

        try:
            await asyncio.to_thread(write)
        except (BrokenPipeError, OSError):
            await self._died(worker)

    async def receive(self, worker: Worker) -> dict[str, Any]:
        line = await asyncio.to_thread(worker.child.stdout.readline)  # type: ignore[union-attr]
        if not line:
            await self._died(worker)
        return json.loads(line)

    async def _died(self, worker: Worker) -> None:
        await asyncio.to_thread(worker.child.wait)
        reason = worker.child.exit_reason()
        tail = worker.child.stderr_tail(1)
        await self._replace(worker, "died")
        raise WorkerDied(f"the worker process ended ({reason}) while handling the request"
                         + (f": {tail[-1]}" if tail else ""))  # fmt: skip

    async def close(self) -> None:
        for worker in list(self.workers.values()):
            await asyncio.to_thread(worker.child.close)
        self.workers.clear()
        self._logs.cleanup()
