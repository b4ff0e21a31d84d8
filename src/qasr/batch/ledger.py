"""The batch's memory on the shared filesystem: finished pieces, and attempts that killed their actor.

Ray Data retries the work of an actor that died, forever by default: right for a node that went
away, wrong for an input that makes the engine abort every time. So before an actor hands a piece
to the engine it records an **attempt** (a file created exclusively under the run's directory,
naming the actor's fault file); a piece that comes back with ``retries + 1`` unfinished attempts is
not run again but reported failed, with how each attempt ended. How it ended is read from the
actor's **fault file**: each actor process points Python's `faulthandler` at its own file, which
the C-level handler writes even when native code aborts (``Fatal Python error: Aborted``); a file
left empty means the process was killed from outside (SIGKILL, the OOM killer, its node gone).

A **finished piece** is saved (atomically) before it is returned, under a key made of the audio's
SHA-256 and the options hash, so a piece Ray delivers twice is transcribed once, and a run killed at
any moment keeps the pieces of long files already done. The driver removes an input's pieces once
the input is in the manifest, and the run's attempts when the run ends.

Everything lives under ``OUT_DIR/.qasr-batch/``, which every node must see (as the outputs).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qasr.fileio import atomic_file

#: faulthandler's first line per fatal signal, and the signal's name.
_FAULT_SIGNALS = (("Aborted", "SIGABRT"), ("Segmentation fault", "SIGSEGV"), ("Bus error", "SIGBUS"),
                  ("Floating-point exception", "SIGFPE"), ("Illegal instruction", "SIGILL"))  # fmt: skip
NO_TRACE = "killed without a trace (SIGKILL, out of memory, or its node went away)"


@dataclass(frozen=True)
class Refused:
    """A piece that already killed its actor ``attempts`` times: how each attempt ended."""

    attempts: int
    endings: list[str]

    @property
    def signal(self) -> str | None:
        """The signal most attempts ended with (SIGABRT, ...), or None if none left a trace."""
        named = [e for e in self.endings if e.startswith("SIG")]
        return max(set(named), key=named.count) if named else None

    @property
    def message(self) -> str:
        return f"the engine's process died on this input {self.attempts} times ({'; '.join(self.endings)})"


class Ledger:
    """Finished pieces and the attempts of run ``run_id`` under ``root`` (``OUT_DIR/.qasr-batch``)."""

    def __init__(self, root: str | os.PathLike[str], run_id: str) -> None:
        self.root = Path(root)
        self.run = self.root / "runs" / run_id

    def create(self) -> None:
        """Make the directories (the driver, once)."""
        for sub in ("attempts", "faults"):
            (self.run / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "pieces").mkdir(parents=True, exist_ok=True)

    # -- finished pieces ------------------------------------------------------------------------

    def _piece(self, key: str, k: int) -> Path:
        return self.root / "pieces" / key / f"{k}.json"

    def result(self, key: str, k: int) -> dict[str, Any] | None:
        """The saved result of piece ``k`` of ``key``, or None."""
        try:
            data = json.loads(self._piece(key, k).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, key: str, k: int, result: dict[str, Any]) -> None:
        path = self._piece(key, k)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, fsync=False) as fh:
            json.dump(result, fh, ensure_ascii=False)

    def forget(self, key: str) -> None:
        """Drop an input's saved pieces (it is in the manifest now)."""
        shutil.rmtree(self.root / "pieces" / key, ignore_errors=True)

    # -- attempts -------------------------------------------------------------------------------

    def fault_file(self) -> Path:
        """This process's fault file (host and pid: processes on several nodes share the directory)."""
        return self.run / "faults" / f"{socket.gethostname()}-{os.getpid()}.log"

    def begin(self, key: str, k: int, retries: int, fault_file: Path) -> Refused | None:
        """Record an attempt at piece ``k`` of ``key``; or, when ``retries + 1`` attempts already
        failed to finish, record nothing and say how they ended."""
        folder = self.run / "attempts" / f"{key}-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        earlier = sorted(folder.iterdir())
        if len(earlier) > retries:
            return Refused(len(earlier), [ending(Path(p.read_text(encoding="utf-8").strip())) for p in earlier])
        n = len(earlier) + 1
        while True:
            try:
                fd = os.open(folder / f"{n:04d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:  # another actor took this number (a duplicate delivery): the next
                n += 1
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(str(fault_file))
        return None

    def close_run(self) -> None:
        """Remove the run's attempts and fault files (the driver, at the end)."""
        shutil.rmtree(self.run, ignore_errors=True)


def ending(fault_file: Path) -> str:
    """How the process that owned ``fault_file`` ended, from what faulthandler wrote there."""
    try:
        text = fault_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for phrase, name in _FAULT_SIGNALS:
        if phrase in text:
            import signal

            return f"{name} (signal {int(getattr(signal, name))})"
    return NO_TRACE
