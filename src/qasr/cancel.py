"""A call's stop switch: set from any thread, heard between chunks, and at once by an engine that can.

Why a switch and not a flag the caller polls: the caller (the server's worker, whose client went
away) is not the code that runs the engine call, and a chunk of engine work can last seconds (the
audio encoder, a slow token). So a `Cancel` does two things:

* every provider checks it between the pieces of a call (`guarded`): before each engine call and
  at each chunk or segment it raises `qasr.errors.Aborted`, so no further engine call starts;
* an engine that can stop mid-call (qwen3-chatllm: ``chatllm_abort_generation``, `Model.abort`)
  hands `guarded` its abort as ``interrupt``, which `set` calls at once while that call runs.

A provider says which of the two it gets by ``cancels_mid_call`` (`qasr.providers.base`). Upstream
clears its abort flag when a generation starts, so an interrupt that lands just before is lost;
the check at the next chunk is what makes the stop certain.

This module imports nothing from qasr but its errors, so every layer can use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from qasr.errors import Aborted

T = TypeVar("T")


class Cancel:
    """Set once (`set`), from any thread; `check` raises `Aborted` from then on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._interrupts: list[Callable[[], None]] = []

    def set(self) -> None:
        """Stop the call: the running engine's interrupt now, the provider's check at its next chunk."""
        with self._lock:
            if self._set:
                return
            self._set = True
            interrupts = list(self._interrupts)
        for interrupt in interrupts:
            interrupt()

    def is_set(self) -> bool:
        return self._set

    def check(self) -> None:
        """`Aborted` once set (what a provider calls between the pieces of a call)."""
        if self._set:
            raise Aborted("the call was cancelled")

    def _watch(self, interrupt: Callable[[], None]) -> None:
        with self._lock:
            self._interrupts.append(interrupt)
            already = self._set
        if already:
            interrupt()

    def _unwatch(self, interrupt: Callable[[], None]) -> None:
        with self._lock:
            self._interrupts.remove(interrupt)


def guarded(items: Iterable[T], cancel: Cancel | None, interrupt: Callable[[], None] | None = None) -> Iterator[T]:
    """``items`` (an engine call's chunks, a provider's segments) checked against ``cancel``: `Aborted`
    before the first, on either side of each (nothing made after the cancel is passed on, and the
    next is not started), and at the end (an interrupted call may end quietly, and a partial answer
    must not pass for a whole one); ``interrupt`` is called at once if ``cancel`` is set while
    they run. Leaving early closes ``items`` (a chatllm turn aborts when its iterator is closed).
    ``cancel`` None: ``items`` as they are."""
    if cancel is None:
        return iter(items)
    return _guarded(items, cancel, interrupt)


def _guarded(items: Iterable[T], cancel: Cancel, interrupt: Callable[[], None] | None) -> Iterator[T]:
    cancel.check()
    iterator = iter(items)
    if interrupt is not None:
        cancel._watch(interrupt)
    try:
        for item in iterator:
            cancel.check()  # set while this item was made: it is not passed on
            yield item
            cancel.check()  # set while the consumer held it: the next one is not made
        cancel.check()
    finally:
        if interrupt is not None:
            cancel._unwatch(interrupt)
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
