"""A process that loaded a model ends with its own exit status, not an abort in the engine's destructors.

Upstream chatllm.cpp 4a4310e aborts (``free(): invalid pointer`` / ``double free or corruption``,
exit 134) in its static destructors at normal process exit once a Qwen3-ASR or aligner model was
loaded (GUIDE §2). The CLI and our child processes end with ``os._exit``; a user's script, notebook
kernel or test run cannot be asked to. So once the first model has started, `install` registers
libc's ``_exit`` with glibc's ``on_exit``, which hands a handler the status ``exit()`` was called
with. Handlers run in the reverse order of registration, and the engine's destructors were
registered when its library was loaded, before ours: ``_exit(status)`` runs first and ends the
process with the status the program chose, without the destructors.

What still happens, because it happens before C's ``exit()``: Python's ``atexit`` handlers, waiting
for non-daemon threads, flushing and closing Python's files (``sys.stdout`` included) and the
interpreter's finalisation. C's own stdio buffers are flushed by a Python ``atexit`` handler
registered here. Measured with upstream and the tiny model (tests/test_exit_guard.py pins it on the
test double): a script returning normally exits 0 (134 without the guard), ``sys.exit(3)`` exits 3,
an uncaught exception prints its traceback and exits 1, output without a newline is kept, and a
daemon thread still decoding or a non-daemon thread that finishes do not change any of that.
Ctrl-C at the top level ends by SIGINT as Python always does (no ``exit()``, so no destructors).

Set ``QASR_EXIT_GUARD=0`` to leave the process's exit alone (and see the abort). The guard costs
nothing per call: it is installed once per process.
"""

from __future__ import annotations

import ctypes
import os
import threading

ENV_SWITCH = "QASR_EXIT_GUARD"

_lock = threading.Lock()
_installed = False


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def installed() -> bool:
    return _installed


def install() -> bool:
    """Register the guard once per process (after a model started); True when it is in place."""
    global _installed
    if _installed or not enabled():
        return _installed
    with _lock:
        if _installed:
            return True
        try:
            libc = ctypes.CDLL(None)
            on_exit, _exit, fflush = libc.on_exit, libc._exit, libc.fflush
        except (OSError, AttributeError):  # not glibc: nothing to hook (the abort is upstream's, not ours)
            return False
        import atexit

        fflush.argtypes = [ctypes.c_void_p]
        atexit.register(fflush, None)  # C stdio buffers, while the interpreter still runs
        on_exit.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        # _exit(int) called as handler(int status, void *arg): the extra argument is ignored.
        if on_exit(ctypes.cast(_exit, ctypes.c_void_p), None) != 0:
            return False
        _installed = True
        return True
