"""The worker's side of its pipes: stdin read on a thread of its own, and the watch on its parent.

Why a thread: a decode runs for seconds in the worker's main thread, and the parent must be able to
stop it when its client goes away or the server shuts down (``{"op": "abort", "id"}``). The thread
reads every line as it comes; requests and streamed audio go to the main loop in order, an abort
marks that request cancelled and calls the engine's abort at once (`qasr.engine.model.Model.abort`).

Why the watch: nothing the server started may outlive it (a SIGKILL of the server, as the OOM killer
or a container runtime does), the worker's own children (the VAD, the aligner) included. Two signs,
one per state:

* idle, the worker has no children: ``PR_SET_PDEATHSIG`` has the kernel SIGKILL it with its parent;
* during a request it may have children, which a death signal would orphan (measured: a VAD child
  mid-batch lived 1.9 s on after its worker): the death signal is disarmed, and end of stdin (only
  the server holds the other end) has this thread kill the worker's children, then the worker.

The worker leads its own process group, so the server can also end a dead worker's children.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
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


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _death_signal(sig: int) -> None:
    """Have the kernel send ``sig`` when the parent dies (0: nothing); Linux only, else a no-op."""
    prctl = getattr(_libc(), "prctl", None)
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _parent_gone() -> bool:
    expected = os.environ.get(PARENT_ENV)
    return bool(expected and expected.isdigit() and os.getppid() != int(expected))


def watch_parent() -> None:
    """Die with the parent, lead a process group of our own, and ignore the terminal's Ctrl-C (the
    server's to handle; the ignore is inherited by our children).

    The death signal follows the parent *thread* that forked us, so the pool spawns workers from its
    event loop's thread, which lives as long as the server. A parent that died before the watch was
    armed is caught by comparing ``getppid()`` with the pid it gave us.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _death_signal(signal.SIGKILL)
    if _parent_gone():
        os._exit(0)


def _end() -> None:
    """End this worker now, its children first (they would outlive it otherwise)."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    os._exit(0)


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
        _end()

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
        """The main loop starts ``rid``; aborts of earlier requests can no longer matter (ids only grow).

        From here until `end` the worker may have children: the end of stdin, not the death signal,
        ends it (see the module doc)."""
        _death_signal(0)
        with self._lock:
            self._running = rid if isinstance(rid, int) else None
            if self._running is not None:
                self._cancelled = {i for i in self._cancelled if i >= self._running}

    def end(self) -> None:
        with self._lock:
            if self._running is not None:
                self._cancelled.discard(self._running)
            self._running = None
        _death_signal(signal.SIGKILL)  # idle again: no children left to orphan
        if _parent_gone():
            _end()

    def cancelled(self, rid: object) -> bool:
        with self._lock:
            return rid in self._cancelled
