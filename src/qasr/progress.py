"""Progress bars, one way: a small interface, one rich implementation, silence when not a terminal.

Every long job reports through `Progress`: downloads (bytes), the long-form pipeline's phases
(seconds of audio), lab runs (iterations) and batches of files (count). Library code receives a
`Progress` and never decides whether a terminal is there; `make_progress` does, once, for the CLI.
Bars go to stderr and vanish when done (``transient``), so stdout stays clean for results.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, Protocol

#: What a bar counts: items (files, iterations), seconds of audio, or bytes.
Unit = Literal["count", "seconds", "bytes"]


class Progress(Protocol):
    """Tasks named by ``key``; starting a key again resets it (a download that resumes)."""

    def start(self, key: str, total: float | None, *, label: str | None = None, done: float = 0) -> None: ...

    def advance(self, key: str, amount: float = 1) -> None: ...

    def update(self, key: str, *, completed: float | None = None, note: str | None = None) -> None: ...

    def stop(self) -> None: ...


class SilentProgress:
    """No output: for pipes, logs, ``--json`` and tests."""

    def start(self, key: str, total: float | None, *, label: str | None = None, done: float = 0) -> None: ...

    def advance(self, key: str, amount: float = 1) -> None: ...

    def update(self, key: str, *, completed: float | None = None, note: str | None = None) -> None: ...

    def stop(self) -> None: ...


def _columns(unit: Unit) -> list[Any]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    label = TextColumn("[bold]{task.description:<15}")
    if unit == "bytes":
        return [label, BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    if unit == "seconds":
        amount = TextColumn("{task.completed:>7.1f}/{task.total:.1f} s")
        return [label, BarColumn(), amount, TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return [label, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}")]


class RichProgress:
    """rich bars on stderr, one per key, in the columns that suit the unit."""

    def __init__(self, unit: Unit = "count") -> None:
        from rich.console import Console
        from rich.progress import Progress as Bars

        self.unit = unit
        self._bars = Bars(*_columns(unit), console=Console(stderr=True), transient=True)
        self._tasks: dict[str, Any] = {}

    def start(self, key: str, total: float | None, *, label: str | None = None, done: float = 0) -> None:
        if self.unit == "seconds" and total is not None:
            total = max(total, 1e-6)  # a zero-length phase still draws a finished bar
        if key in self._tasks:
            self._bars.reset(self._tasks[key], total=total, completed=done)
            return
        if not self._tasks:
            self._bars.start()
        self._tasks[key] = self._bars.add_task(label or key, total=total, completed=done, note="")

    def advance(self, key: str, amount: float = 1) -> None:
        if key in self._tasks:
            self._bars.advance(self._tasks[key], amount)

    def update(self, key: str, *, completed: float | None = None, note: str | None = None) -> None:
        if key in self._tasks:
            fields = {} if note is None else {"note": note}
            self._bars.update(self._tasks[key], completed=completed, **fields)

    def stop(self) -> None:
        if self._tasks:
            self._bars.stop()


def make_progress(enabled: bool | None = None, unit: Unit = "count") -> Progress:
    """A bar when asked (True), none when not (False); by default (None) only when stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return RichProgress(unit) if enabled else SilentProgress()
