"""Child processes, one way: start, watch, stop (terminate, then kill), and say how they ended.

Everything that loads the engine away from the caller's process goes through `Child`: the
long-form pipeline's worker phases, the lab's scenario runs, and later the server's workers and the
benchmark's per-provider runs. Why children at all: upstream chatllm.cpp aborts when a model is
destroyed, so a process boundary is the only way a model leaves memory, and a native crash then
costs one child, never the caller.

Also here: `peak_rss_bytes`, a process's own peak resident set, read the same way for this process
and for a child, and `status_bytes` for any other ``/proc/PID/status`` figure.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

#: How long a child gets to exit on its own after SIGTERM before SIGKILL.
GRACE_SECONDS = 5.0


def status_bytes(field: str, pid: int | str = "self") -> int | None:
    """One ``kB`` figure of ``/proc/PID/status`` (``VmRSS``, ``RssAnon``, ``VmHWM``...) in bytes; None if unreadable."""
    prefix = f"{field}:"
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(prefix):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes(pid: int | str = "self") -> int:
    """A process's own peak resident set (VmHWM; this process by default); 0 if it cannot be read.

    Not ``ru_maxrss``: Linux folds the parent's RSS at fork into a child's ``ru_maxrss`` across
    exec (measured: a child of a 410 MB parent reported 410 MB while its VmHWM was 8.7 MB).
    """
    peak = status_bytes("VmHWM", pid)
    if peak is not None:
        return peak
    if pid == "self":
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return 0


def signal_of(returncode: int | None) -> int | None:
    """The signal that ended a process: -N from Popen, or 128+N from a shell-style exit (abort, kill, segfault)."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    return returncode - 128 if returncode in (128 + signal.SIGABRT, 128 + signal.SIGKILL, 128 + signal.SIGSEGV) else None


def signal_name(sig: int | None) -> str | None:
    try:
        return signal.Signals(sig).name if sig else None
    except ValueError:
        return None


def exit_reason(returncode: int | None) -> str:
    """One phrase for how a process ended: ``exit 0``, ``exit 2``, ``killed by SIGABRT (signal 6)``."""
    if returncode is None:
        return "still running"
    sig = signal_of(returncode)
    if sig is not None:
        return f"killed by {signal_name(sig) or 'signal'} (signal {sig})"
    return f"exit {returncode}"


def describe_exit(returncode: int | None) -> dict[str, Any]:
    """The same as a record: exit code, signal number and the signal's name (None where none)."""
    sig = signal_of(returncode)
    return {"exit_code": returncode, "signal": sig, "signal_name": signal_name(sig)}


class Child:
    """``python -m MODULE ARGS...`` in a child process, stderr into a file whose tail explains an end.

    ``stdout`` is ``"pipe"`` (read it from `stdout`; text lines unless ``text=False``), ``"stderr"``
    (into the same log) or None (discarded); ``stdin=True`` gives a pipe to write to (`stdin`),
    else the child reads nothing. Use as a context manager: leaving the block stops a child that
    still runs.
    """

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        stdout: str | None = None,
        stdin: bool = False,
        text: bool = True,
    ) -> None:
        self.module, self.args, self.log, self.peak = module, list(args), log, 0
        with open(log, "wb") as log_file:  # the child keeps its own descriptor
            out: int | IO[bytes] = subprocess.DEVNULL
            if stdout == "pipe":
                out = subprocess.PIPE
            elif stdout == "stderr":
                out = log_file
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *self.args], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=out, stderr=log_file, env=dict(env) if env is not None else None, text=text and stdout == "pipe",
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> IO[Any] | None:
        return self.proc.stdout

    @property
    def stdin(self) -> IO[Any] | None:
        return self.proc.stdin

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        """The exit code once ended, else None; follows the child's peak RSS while it runs."""
        code = self.proc.poll()
        if code is None:
            self.peak = max(self.peak, peak_rss_bytes(self.proc.pid))
        return code

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def stop(self, grace: float = GRACE_SECONDS, *, wait_first: float = 0.0) -> int:
        """End the child: let it finish for ``wait_first`` s, then SIGTERM, then SIGKILL after ``grace``."""
        if not self._ended_within(wait_first):
            self.proc.terminate()
            if not self._ended_within(grace):
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def _ended_within(self, seconds: float) -> bool:
        if self.proc.poll() is not None:
            return True
        if seconds <= 0:
            return False
        try:
            self.proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stderr_tail(self, lines: int = 20) -> list[str]:
        """The last lines the child wrote to its log (its stderr)."""
        try:
            with self.log.open(encoding="utf-8", errors="replace") as fh:
                return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
        except OSError:
            return []

    def exit_reason(self) -> str:
        return exit_reason(self.proc.returncode)

    def close(self) -> None:
        """Stop the child if it still runs (closing its stdin first: a reader then ends by itself)."""
        try:
            if self.proc.stdin is not None:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            if self.proc.poll() is None:
                self.stop(wait_first=1.0 if self.proc.stdin is not None else 0.0)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
