"""The worker's side of its pipes: stdin read on a thread of its own, and the watch on its parent.

Why a thread: a decode runs for seconds in the worker's main thread, and the parent must be able to
stop it when its client goes away or the server shuts down (``{"op": "abort", "id"}``). The thread
reads every line as it comes; requests and streamed audio go to the main loop in order, an abort
marks that request cancelled and calls the engine's abort at once (`qasr.engine.model.Model.abort`).

Why the watch: a worker must never outlive its server (a SIGKILL of the server, as the OOM killer or
a container runtime does). ``PR_SET_PDEATHSIG`` has the kernel kill the worker when its parent dies;
end of stdin (only the parent holds the other end) is the second, portable sign, and ends the
process from this thread even while the main thread is inside the engine.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

#: The parent's pid, set by the pool in the worker's environment: the death watch checks it once armed.
PARENT_ENV = "QASR_SERVE_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def watch_parent() -> None:
    """Die with the parent (Linux ``prctl``), and ignore the terminal's Ctrl-C, which is the server's to handle.

    The death signal follows the parent *thread* that forked us, so the pool spawns workers from its
    event loop's thread, which lives as long as the server. A parent that died before the watch
    was armed is caught by comparing ``getppid()`` with the pid it gave us.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the worker's own children too
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: end of stdin still ends the worker
        pass
    expected = os.environ.get(PARENT_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        os._exit(0)  # the server is already gone


class Control:
    """Lines from the parent, read on a thread; aborts act at once, everything else waits its turn."""

    def __init__(self, stdin: TextIO, abort_engine: Callable[[], None]) -> None:
        self._inbox: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()
        self._running: int | None = None  # the request the main loop is working on
        self._abort_engine = abort_engine
        threading.Thread(target=self._read, args=(stdin,), name="qasr-worker-control", daemon=True).start()

    def _read(self, stdin: TextIO) -> None:
        for line in iter(stdin.readline, ""):
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("op") == "abort":
                self._cancel(message.get("id"))
            self._inbox.put(message)  # an abort too: it ends a live stream's audio
        # End of stdin: the parent retired us (we are idle) or is gone. Nothing to answer either way.
        os._exit(0)

    def _cancel(self, rid: object) -> None:
        if not isinstance(rid, int):
            return
        with self._lock:
            self._cancelled.add(rid)
            if self._running == rid:
                self._abort_engine()

    def messages(self) -> Iterator[dict[str, Any]]:
        """Requests and audio in the order they came (aborts of requests already done are dropped)."""
        while True:
            message = self._inbox.get()
            if message is None:
                return
            if message.get("op") == "abort" and message.get("id") != self._running:
                continue
            yield message

    def begin(self, rid: object) -> None:
        """The main loop starts ``rid``; aborts of earlier requests can no longer matter (ids only grow)."""
        with self._lock:
            self._running = rid if isinstance(rid, int) else None
            if self._running is not None:
                self._cancelled = {i for i in self._cancelled if i >= self._running}

    def end(self) -> None:
        with self._lock:
            if self._running is not None:
                self._cancelled.discard(self._running)
            self._running = None

    def cancelled(self, rid: object) -> bool:
        with self._lock:
            return rid in self._cancelled
