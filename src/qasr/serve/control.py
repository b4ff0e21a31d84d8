"""The worker's side of its pipes: stdin read on a thread of its own, and the watch on its parent.

Why a thread: a decode runs for seconds in the worker's main thread, and the parent must be able to
stop it when its client goes away or the server shuts down (an ``abort`` message with the request's
``id``). The thread reads every message as it comes (`qasr.channel`); requests and streamed audio go
to the main loop in order, an abort sets that request's `qasr.cancel.Cancel`, which stops the
provider's engine at once where it can (qwen3-chatllm: `qasr.engine.model.Model.abort`) and between
segments otherwise.

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
import os
import queue
import signal
import threading
from collections.abc import Iterator
from typing import IO

from qasr.cancel import Cancel
from qasr.channel import Message, Receiver

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
    """Messages from the parent (`qasr.channel`), read on a thread; aborts act at once, everything
    else waits its turn. Each request runs with a `qasr.cancel.Cancel` of its own (`begin`), which
    an ``abort`` for it sets: the provider's engine stops at once where it can."""

    def __init__(self, stdin: IO[bytes]) -> None:
        self._inbox: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()  # aborts of requests not finished, begun or not
        self._running: int | None = None  # the request the main loop is working on
        self._cancel: Cancel | None = None  # the running request's
        threading.Thread(target=self._read, args=(stdin,), name="qasr-worker-control", daemon=True).start()

    def _read(self, stdin: IO[bytes]) -> None:
        for message in Receiver(stdin):
            if message.kind == "abort":
                self._abort(message.get("id"))
            self._inbox.put(message)  # an abort too: it ends a live stream's audio
        # End of stdin: the parent retired us (we are idle) or is gone. Nothing to answer either way.
        _end()

    def _abort(self, rid: object) -> None:
        if not isinstance(rid, int):
            return
        with self._lock:
            self._cancelled.add(rid)
            cancel = self._cancel if self._running == rid else None
        if cancel is not None:
            cancel.set()

    def messages(self) -> Iterator[Message]:
        """Requests and audio in the order they came (aborts of requests already done are dropped)."""
        while True:
            message = self._inbox.get()
            if message is None:
                return
            if message.kind == "abort" and message.get("id") != self._running:
                continue
            yield message

    def begin(self, rid: object) -> Cancel:
        """The main loop starts ``rid``: its cancel (already set if it was aborted while queued).
        Aborts of earlier requests can no longer matter (ids only grow).

        From here until `end` the worker may have children: the end of stdin, not the death signal,
        ends it (see the module doc)."""
        _death_signal(0)
        cancel = Cancel()
        with self._lock:
            self._running = rid if isinstance(rid, int) else None
            self._cancel = cancel
            if self._running is not None:
                self._cancelled = {i for i in self._cancelled if i >= self._running}
            aborted = rid in self._cancelled
        if aborted:
            cancel.set()
        return cancel

    def end(self) -> None:
        with self._lock:
            if self._running is not None:
                self._cancelled.discard(self._running)
            self._running, self._cancel = None, None
        _death_signal(signal.SIGKILL)  # idle again: no children left to orphan
        if _parent_gone():
            _end()
